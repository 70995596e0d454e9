import os

import s6lab
from s6lab.analysis.mistakes import find_mistakes, format_mistakes, plot_confusion, plot_mistakes
from s6lab.analysis.saliency import attributions, pick_samples, plot_saliency
from s6lab.data import load_split

run = s6lab.load_run(os.environ.get("S6LAB_RUN", "results/runs/s6/e15-s0"))  # any `s6lab train` folder
test = load_split(train=False)
p = find_mistakes(run.model, test)  # log-probabilities and labels for the 10k test digits
print(format_mistakes(p))
plot_mistakes(test.images, p, n=25)  # highest-loss mistakes
plot_confusion(p, normalize=True)
idx = pick_samples(p, n=6)  # most confident mistakes, then correct ones
maps = attributions(run.model, test.images[idx], methods=("saliency", "integrated_gradients", "gradcam"))
fig = plot_saliency(test.images[idx], maps, labels=p.labels[idx], predicted=p.predicted[idx],
                    confidence=p.confidence[idx])

import torch.nn as nn

import s6lab

# the net as a course notebook writes it: plain torch, log-probabilities at the end
model = nn.Sequential(
    nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1),
    nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1),
    nn.Conv2d(32, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LogSoftmax(dim=1),
)
# its optimizer, scheduler and augmentation, named as torch and torchvision name them
recipe = s6lab.TrainConfig(
    epochs=15, batch_size=128, lr=0.01, momentum=0.9, nesterov=False, weight_decay=0.0,
    scheduler="OneCycleLR(max_lr=0.05, pct_start=0.3, div_factor=10, final_div_factor=100)",
    augmentation="RandomRotation(7, fill=0), RandomAffine(degrees=0, translate=(0.1, 0.1))",
)
history = s6lab.fit(model, s6lab.load_mnist(), recipe)
print(s6lab.format_check(s6lab.assignment_check(model, history)))

import s6lab
from s6lab.comparison import format_comparison, render

result = s6lab.compare(["s6", "s6-gap", "s6-two-3x3"], seeds=[0, 1], epochs=10, out="results")
print(format_comparison(result))  # finished runs are loaded, not retrained
render(result, "results", "my-comparison")  # .md, .csv, .txt and two figures

import s6lab
from s6lab.analysis.budget import format_budget, parameter_budget
from s6lab.analysis.receptive_field import format_receptive_fields, receptive_fields

model = s6lab.get_model("s6")
print(s6lab.summary(model))  # torchinfo: shapes, parameters, multiply-adds
print(format_receptive_fields(receptive_fields(model), only_changes=True))
print(format_budget(parameter_budget(model)))  # per block; level="layers" for every layer

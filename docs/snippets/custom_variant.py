import s6lab
from s6lab import GAP, Conv, NetSpec, Pool, Transition

spec = NetSpec(
    "my-net",
    description="My first variant: padding keeps the maps large, GAP head.",
    layers=(Conv(8, padding=1), Conv(16, padding=1), Pool(dropout=0.05), Transition(8),
            Conv(16), Conv(16), GAP()),
)
s6lab.register_model(spec)  # build() checks channels and sizes; errors name the layer
model = s6lab.get_model("my-net")
print(s6lab.count_parameters(model))

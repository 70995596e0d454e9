import s6lab
from s6lab import ConvBNSpec, GAPHeadSpec, NetSpec, PoolDropSpec, Transition1x1Spec

spec = NetSpec(
    "my-net",
    description="My first variant: padding keeps the maps large, GAP head.",
    layers=(ConvBNSpec(8, padding=1), ConvBNSpec(16, padding=1), PoolDropSpec(dropout=0.05),
            Transition1x1Spec(8), ConvBNSpec(16), ConvBNSpec(16), GAPHeadSpec()),
)
s6lab.register_model(spec)  # build() checks channels and sizes; errors name the layer
model = s6lab.get_model("my-net")
print(s6lab.count_parameters(model))

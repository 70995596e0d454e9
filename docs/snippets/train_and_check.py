import s6lab

data = s6lab.load_mnist()  # verified real MNIST as tensors (fetched on first use)
s6lab.seed_everything(0)
model = s6lab.get_model("s6")
history = s6lab.fit(model, data, s6lab.get_recipe("s6", seed=0))  # the variant's recipe: 18 epochs
print(s6lab.format_check(s6lab.assignment_check(model, history)))

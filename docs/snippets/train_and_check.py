import s6lab

recipe = s6lab.get_recipe("s6", seed=0)  # the variant's recipe: its net and its training (18 epochs)
model = recipe.build()  # initialised from the recipe's seed: the same weights on every machine
data = s6lab.load_mnist()  # verified real MNIST as tensors (fetched on first use)
history = s6lab.fit(model, data, recipe.train)
print(s6lab.format_check(s6lab.assignment_check(model, history)))

"""The reference S6 Net: 19,602 parameters, trained with the default recipe.

What to look at: the torchinfo summary (same layers and counts as the assignment's table),
the receptive-field table (16 px before the FC head), and the PASS/FAIL check after
training. Real numbers need the default 18 epochs: how long that takes depends on the
machine (`s6lab doctor` estimates it; results/machines.md lists the classes measured).
"""

from __future__ import annotations

from _common import one_line_errors, parse

import s6lab
from s6lab.analysis.receptive_field import format_receptive_fields, receptive_fields

if __name__ == "__main__":  # not when --jobs starts its worker processes, which import this file
    with one_line_errors():
        args = parse(__doc__, epochs=18)
        model = s6lab.get_model("s6")
        print(s6lab.summary(model))
        print(format_receptive_fields(receptive_fields(model), only_changes=True))

        data = s6lab.load_mnist(train_size=args.train_size, test_size=args.test_size)
        recipe = s6lab.get_recipe("s6", epochs=args.epochs, seed=args.seeds[0])  # the variant's net and training
        model = recipe.build()  # initialised from the recipe's seed
        history = s6lab.fit(model, data, recipe.train, progress=not args.quick)
        print(s6lab.format_check(s6lab.assignment_check(model, history)))

"""Analysis toolkit: each module has a compute function, a formatter and a plot."""

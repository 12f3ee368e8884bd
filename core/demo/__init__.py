"""The built-in demo: a rendered plant-gate scene with the 5-celebrity people and strangers
(:mod:`.scene`), and the first-run enrollment of the demo people into an empty registry
(:mod:`.setup`)."""

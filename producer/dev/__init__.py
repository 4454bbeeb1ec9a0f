"""Development tooling: the local stack on embedded defaults, generated samples, the demo."""

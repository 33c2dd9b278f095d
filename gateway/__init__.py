"""gateway — the program: CLI (`leakguard …`), configuration, supervision."""

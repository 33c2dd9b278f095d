"""proxy — lands with a later issue; the package exists so the layout is fixed from the start."""

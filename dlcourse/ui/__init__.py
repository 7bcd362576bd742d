"""Gradio tabs: components and their wiring only; every computation is in the package's logic modules."""

"""The logic behind the Space: plain values in, plain values out, no Gradio here (except `ui/`)."""

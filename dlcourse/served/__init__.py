"""The served model: opening a model file (`loading`, which picks the reader: `modelfile`, this project's format,
or `fastai_export`, a fastai export read without fastai with `fastai_layers` and `safe_pickle`), the classifier
(`classifier`, `fast_forward`), image decoding and digit preprocessing (`images`, `preprocess`), and the digits
re-rendered as visitors' pictures that the examples and the photo benchmark use (`digit_variants`)."""

"""The served model: the model file (`modelfile`), a fastai export read without fastai (`fastai_export`,
`fastai_layers`, `safe_pickle`), the classifier (`classifier`, `fast_forward`), image decoding and digit
preprocessing (`images`, `preprocess`)."""

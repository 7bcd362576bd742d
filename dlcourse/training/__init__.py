"""Training: data sources, transforms, the fine-tune loop, evaluation of a model file.

- `data`: where labelled images come from (ImageFolder layout, file names + regex, MNIST IDX files)
  and how they split into training and validation sets.
- `transforms`: the default augmentations for photos and digits (`dlcourse.served.preprocess.create_transform`
  builds training's and validation's pipelines from one description).
- `distributed`: one process or several under `torchrun` (DDP); who prints and writes.
- `learner`: the model, freeze/unfreeze, AdamW + one-cycle, AMP, the epoch table, evaluation.
- `schedules`: the one-cycle schedule's settings and scheduler, and each step's rates in closed form
  (the quadratic tab steps by hand with the same schedule).
- `evaluate`: accuracy of a saved model file on a data set, the way the app sees images.
- what training reports: `lr_find` (the learning-rate range test), `interpretation` (confusion matrix, most
  confused, top losses), `report` (the report folder and the summary kept in the model file), `report_view`
  (that summary as the app shows it), `plots`.

`train.py` at the top of the repository strings these together; read it first.
"""

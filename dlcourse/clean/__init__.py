"""The data cleaner (lesson 2's ImageClassifierCleaner, without a notebook): rank a data set's images by the
model's loss (`ranking`), decide keep, delete or relabel, apply the decisions to cleaned.csv and, when asked,
to the files, with a log that undoes them (`apply`). `items` reads the data as train.py does; `session` is
what the page (dlcourse/ui/clean.py) shows; `python -m dlcourse.clean` runs it all (`__main__`)."""

"""Lesson: fit a quadratic by hand and by SGD: the data and SGD (`fit`), the tab's session (`session`), its
pictures (`plots`), its API endpoints (`api`) and the same data fitted by a sum of ReLUs (`relu_fit`)."""

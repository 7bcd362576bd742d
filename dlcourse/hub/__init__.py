"""Publishing to the Hugging Face Hub: a model repo (`model_repo`: stage, push, and the model the app
serves from MODEL_REPO), its model card (`model_card`) and the files timm reads (`repo_layout`)."""

"""evaluation — reply and score metrics against the paper, on the models users deploy."""

"""Training loops: pretrain (pretext), finetune (action recognition), evaluate."""

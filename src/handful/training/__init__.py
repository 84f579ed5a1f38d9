"""Training through TRL, peft and accelerate (`handful train sft|grpo`): recipes in
`config`, the stages in `sft` and `grpo`, what they share in `common`, rewards built on
the shared grader in `rewards`."""

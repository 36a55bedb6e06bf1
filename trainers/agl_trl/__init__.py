"""Agent Lightning trainers on torch/transformers/TRL: GRPO, RLOO, SFT and the tiny demo model."""

"""Diffusion Policy (Chi et al., 2023): a 1-D conditional U-Net denoising action sequences."""

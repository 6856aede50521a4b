"""The diffusion generator: diffusers UNets (load, save, train), the DDPM/DDIM/EDM samplers
whose image i depends only on (seed, i), and the EDM Heun sampler itself."""

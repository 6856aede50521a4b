"""EDM's second-order Heun sampler (Karras et al. 2022, Algorithm 2) for DDPM/VP diffusers UNets.

Written here because diffusers' HeunDiscreteScheduler takes its Karras schedule from the model's
own sigma range (no sigma_min 0.002 / sigma_max 80 / rho choice) and has no S_churn, while
EDMEulerScheduler and EDMDPMSolverMultistepScheduler assume EDM-preconditioned networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor


@dataclass(frozen=True)
class EDMSettings:
    num_steps: int = 18
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    s_churn: float = 0.0
    s_min: float = 0.0
    s_max: float = float("inf")
    s_noise: float = 1.0


class VPDenoiser:
    """D(x, sigma) of a discrete-time VP (DDPM) UNet in EDM's variance-exploding coordinates.

    x = x0 + sigma·n maps to the UNet's input x / sqrt(sigma² + 1) at the fractional timestep
    whose sigma_t = sqrt((1 - ᾱ_t) / ᾱ_t) is sigma (log-sigma interpolation, as diffusers' Heun).
    """

    def __init__(self, unet, scheduler_config):
        self.unet = unet
        abar = DDPMScheduler.from_config(scheduler_config).alphas_cumprod.double()
        self.log_sigmas = ((1 - abar) / abar).sqrt().log()  # increasing in t
        self.sigma_min = float(self.log_sigmas[0].exp())
        self.sigma_max = float(self.log_sigmas[-1].exp())
        self.prediction_type = scheduler_config.get("prediction_type", "epsilon")

    def timestep(self, sigma: float) -> float:
        log_s = torch.tensor(sigma, dtype=torch.float64).log()
        log_s = log_s.clamp(self.log_sigmas[0], self.log_sigmas[-1]).reshape(1)
        hi = torch.searchsorted(self.log_sigmas, log_s).clamp(1, len(self.log_sigmas) - 1)
        lo = hi - 1
        w = (log_s - self.log_sigmas[lo]) / (self.log_sigmas[hi] - self.log_sigmas[lo])
        return float(lo + w)

    def __call__(self, x: torch.Tensor, sigma: float, class_labels=None) -> torch.Tensor:
        """sigma is a Python float: the schedule lives on the host, so the loop never syncs."""
        c_in = 1 / np.sqrt(sigma**2 + 1)
        # a tensor timestep: UNet2DModel would cast a Python float to long
        t = torch.full((len(x),), self.timestep(sigma), device=x.device)
        out = self.unet((x * c_in).to(self.unet.dtype), t, class_labels=class_labels).sample
        out = out.to(torch.float64)
        if self.prediction_type == "epsilon":
            return x - sigma * out
        if self.prediction_type == "v_prediction":  # x0 = sqrt(ᾱ)·x_t − sqrt(1 − ᾱ)·v
            return c_in**2 * x - sigma * c_in * out
        if self.prediction_type == "sample":
            return out
        raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")


def karras_sigmas(s: EDMSettings, denoiser: VPDenoiser) -> list[float]:
    """The Karras et al. schedule, clamped to the network's sigma range, with a final 0."""
    sigma_min = max(s.sigma_min, denoiser.sigma_min)
    sigma_max = min(s.sigma_max, denoiser.sigma_max)
    ramp = np.linspace(0, 1, s.num_steps)
    inv_rho = 1 / s.rho
    sigmas = (sigma_max**inv_rho + ramp * (sigma_min**inv_rho - sigma_max**inv_rho)) ** s.rho
    return [float(v) for v in sigmas] + [0.0]


def edm_sample(denoiser: VPDenoiser, generators: list[torch.Generator], shape, s: EDMSettings,
               device, class_labels=None) -> torch.Tensor:
    """Algorithm 2 of EDM, with its names (as NVlabs/edm's generate.py): 2·num_steps − 1
    network evaluations; returns x0 in about [-1, 1]. The extra noise of a churn step is drawn
    only when gamma > 0, so without S_churn each image's noise is its initial draw alone."""
    t_steps = karras_sigmas(s, denoiser)  # t_0 > ... > t_{N-1} > t_N = 0 (sigma = t in EDM)
    x_next = randn_tensor(shape, generator=generators, device=torch.device(device),
                          dtype=torch.float64) * t_steps[0]
    gamma_max = min(s.s_churn / s.num_steps, np.sqrt(2) - 1)
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):  # i = 0, ..., N-1
        x_cur = x_next

        # Increase noise temporarily: from t_cur up to t_hat = (1 + gamma)·t_cur.
        gamma = gamma_max if s.s_churn > 0 and s.s_min <= t_cur <= s.s_max else 0.0
        t_hat = t_cur + gamma * t_cur
        x_hat = x_cur
        if gamma > 0:
            eps = randn_tensor(shape, generator=generators, device=torch.device(device),
                               dtype=torch.float64)
            x_hat = x_cur + np.sqrt(t_hat**2 - t_cur**2) * s.s_noise * eps

        # Euler step from t_hat to t_next along dx/dt = (x − D(x; t)) / t.
        denoised = denoiser(x_hat, t_hat, class_labels)
        d_cur = (x_hat - denoised) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur

        # Second-order (Heun) correction, except on the last step, to t = 0.
        if i < s.num_steps - 1:
            denoised = denoiser(x_next, t_next, class_labels)
            d_prime = (x_next - denoised) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next

r"""Leaky integrate-and-fire neuron as a PyTorch activation, multi-step over time.

Equations (discrete time, no units: the input is a current already scaled to membrane units; one
step per time bin). For every neuron, with ``S[t] = H(U[t] - theta)`` (``H(0) = 0``):

* reset by subtraction (default; the snnTorch ``Leaky`` / snn-tha convention)::

      U[t] = beta * U[t-1] + I[t] - theta * S[t-1]

* reset to zero::

      U[t] = beta * (1 - S[t-1]) * U[t-1] + I[t]

* no reset::

      U[t] = beta * U[t-1] + I[t]

``U[-1]`` is the initial membrane (0 unless given) and ``S[-1] = H(U[-1] - theta)``. The reset
signal ``S[t-1]`` is *detached* (no gradient flows through the reset), as in snnTorch and snn-tha;
``theta`` itself still receives a gradient through the subtraction when it is learnable. ``beta`` is
clamped to [0, 1]. In the backward pass ``dS/dU`` is replaced by a surrogate (:mod:`spikeforge.surrogate`)
evaluated at ``U - theta`` in membrane units.

Two implementations compute the same thing:

* **fused** (default for float32/float64 on CPU with a registered surrogate): one custom autograd
  function whose forward and backward time loops are compiled with numba: a single pass over the
  ``[T, M]`` input, no per-step tensor allocations, only ``U`` kept for the backward pass (spikes
  are recomputed from it). A static input (the same current at every step) is read once and its
  gradient summed over time inside the kernel.
* **unfused**: the plain PyTorch recurrence (a few tensor operations per step, autograd records
  each). Used for other devices/dtypes and user-registered surrogates, and as the reference that the
  fused form is tested against.

``leaky_multistep`` is the functional core; :class:`Leaky` is the module wrapper.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from ..config import ConfigError, Params
from ..jit import kernel
from ..surrogate import Surrogate, get_surrogate, spike_fn

ResetMode = Literal["subtract", "zero", "none"]
_RESET_CODE = {"subtract": 0, "zero": 1, "none": 2}


def check_surrogate_name(name: str) -> str:
    """Validator helper: the name must be in the surrogate registry (raises ValueError)."""
    try:
        get_surrogate(name)
    except ConfigError as err:
        raise ValueError(str(err)) from None
    return name


class LeakyParams(Params):
    """Parameters of a layer of leaky integrate-and-fire neurons (dimensionless, per time step).

    Defaults follow snnTorch ``Leaky`` (beta 0.9, threshold 1, subtractive reset); the snn-tha MNIST
    network uses beta 0.99 with fast-sigmoid slope 10.22 (reference §1.5).
    """

    beta: float = Field(0.9, ge=0.0, le=1.0, description="membrane decay per step (exp(-dt/tau_mem))")
    threshold: float = Field(1.0, gt=0.0, description="firing threshold in membrane units")
    surrogate: str = Field("fast_sigmoid", description="name in spikeforge.surrogate.SURROGATES")
    slope: float | None = Field(None, gt=0.0, description="surrogate slope (None: its default)")
    reset: ResetMode = "subtract"
    learn_beta: bool = False
    learn_threshold: bool = False

    @field_validator("surrogate")
    @classmethod
    def _known_surrogate(cls, v: str) -> str:
        return check_surrogate_name(v)

    def make_surrogate(self) -> Surrogate:
        return get_surrogate(self.surrogate, self.slope)


# ----------------------------------------------------------------------------------------------
# compiled kernels: layout [T, M] (time-first, flattened batch x neurons), parameters indexed m % K


@kernel(inline="always")
def _sg(code, x, k):
    if code == 0:
        d = 1.0 + k * abs(x)
        return 1.0 / (d * d)
    elif code == 1:
        z = 1.5707963267948966 * k * x
        return 0.5 * k / (1.0 + z * z)
    elif code == 2:
        s = 1.0 / (1.0 + np.exp(-k * x))
        return k * s * (1.0 - s)
    elif code == 3:
        return 1.0
    else:
        r = 1.0 - k * abs(x)
        return k * r if r > 0.0 else 0.0


@kernel(nogil=True)
def _lif_forward(x, beta, theta, u0, reset, U, S):
    # beta, theta: per-element [M] (expanded by the caller so that the inner loop vectorises)
    T, M = U.shape
    static = x.shape[0] == 1
    u = u0.copy()
    for t in range(T):
        xt = x[0] if static else x[t]
        Ut = U[t]
        St = S[t]
        for m in range(M):
            th = theta[m]
            up = u[m]
            fired = up > th
            if reset == 0:
                un = beta[m] * up + xt[m] - (th if fired else 0.0)
            elif reset == 1:
                un = (0.0 if fired else beta[m] * up) + xt[m]
            else:
                un = beta[m] * up + xt[m]
            u[m] = un
            Ut[m] = un
            St[m] = 1.0 if un > th else 0.0


@kernel(nogil=True)
def _lif_backward(U, u0, beta, theta, reset, code, k, gS, has_gS, gU, has_gU, gx, gbeta, gtheta, param_grads):
    # gbeta, gtheta: per-element [M] accumulators, reduced to the parameter shape by the caller
    T, M = U.shape
    static = gx.shape[0] == 1
    carry = np.zeros(M, dtype=U.dtype)
    for t in range(T - 1, -1, -1):
        Ut = U[t]
        Up = U[t - 1] if t > 0 else u0
        gxt = gx[0] if static else gx[t]
        gSt = gS[t] if has_gS else gS[0]
        gUt = gU[t] if has_gU else gU[0]
        for m in range(M):
            th = theta[m]
            b = beta[m]
            d = carry[m]
            if has_gU:
                d += gUt[m]
            if has_gS:
                gs = gSt[m] * _sg(code, Ut[m] - th, k)
                d += gs
                if param_grads:
                    gtheta[m] -= gs
            if static:
                gxt[m] += d
            else:
                gxt[m] = d
            up = Up[m]
            fired = up > th
            if reset == 0:
                carry[m] = d * b
                if param_grads:
                    gbeta[m] += d * up
                    gtheta[m] -= d if fired else 0.0
            elif reset == 1:
                carry[m] = 0.0 if fired else d * b
                if param_grads:
                    gbeta[m] += 0.0 if fired else d * up
            else:
                carry[m] = d * b
                if param_grads:
                    gbeta[m] += d * up
    return carry


class _LeakyFused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, theta, u0, num_steps, reset, surrogate):
        M = x.shape[1]
        U = torch.empty(num_steps, M, dtype=x.dtype)
        S = torch.empty(num_steps, M, dtype=x.dtype)
        bm = beta.detach().repeat(M // beta.shape[0]).contiguous()
        tm = theta.detach().repeat(M // theta.shape[0]).contiguous()
        _lif_forward(
            x.detach().numpy(), bm.numpy(), tm.numpy(), u0.detach().numpy(), _RESET_CODE[reset], U.numpy(), S.numpy()
        )
        ctx.save_for_backward(U, u0, bm, tm)
        ctx.kb, ctx.kt = beta.shape[0], theta.shape[0]
        ctx.static = x.shape[0] == 1
        ctx.reset = reset
        ctx.surrogate = surrogate
        ctx.set_materialize_grads(False)  # an unused output gets no gradient array at all
        return S, U

    @staticmethod
    def backward(ctx, gS, gU):
        U, u0, bm, tm = ctx.saved_tensors
        T, M = U.shape
        if gS is None and gU is None:
            return None, None, None, None, None, None, None
        dummy = torch.zeros(1, 1, dtype=U.dtype)
        gS_ = gS.contiguous() if gS is not None else dummy
        gU_ = gU.contiguous() if gU is not None else dummy
        gx = torch.zeros(1, M, dtype=U.dtype) if ctx.static else torch.empty(T, M, dtype=U.dtype)
        param_grads = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        gbeta = torch.zeros(M if param_grads else 1, dtype=U.dtype)
        gtheta = torch.zeros(M if param_grads else 1, dtype=U.dtype)
        sur = ctx.surrogate
        carry = _lif_backward(
            U.numpy(),
            u0.detach().numpy(),
            bm.numpy(),
            tm.numpy(),
            _RESET_CODE[ctx.reset],
            sur.code,
            float(sur.slope),
            gS_.numpy(),
            gS is not None,
            gU_.numpy(),
            gU is not None,
            gx.numpy(),
            gbeta.numpy(),
            gtheta.numpy(),
            param_grads,
        )

        def reduce(g, k):  # [M] -> [k], summed in float64
            return g.double().view(-1, k).sum(0).to(U.dtype)

        g_beta = reduce(gbeta, ctx.kb) if ctx.needs_input_grad[1] else None
        g_theta = reduce(gtheta, ctx.kt) if ctx.needs_input_grad[2] else None
        g_u0 = torch.from_numpy(carry) if ctx.needs_input_grad[3] else None
        return gx, g_beta, g_theta, g_u0, None, None, None


def _membrane(u, x, s_prev, beta, theta, reset):
    """The recurrence on tensors: leak, input, and the reset of the previous step's spike."""
    if reset == "subtract":
        return beta * u + x - s_prev * theta
    if reset == "zero":
        return beta * (1.0 - s_prev) * u + x
    return beta * u + x


def _unfused(x, beta, theta, u0, num_steps, reset, surrogate):
    """Reference recurrence on the [T or 1, M] layout; parameters are [K] indexed m % K."""
    M = x.shape[1]

    def per_m(p):
        return p.repeat(M // p.shape[0])

    b = per_m(beta)
    th = per_m(theta)
    u = u0
    s_prev = (u0 > th).to(x.dtype).detach()
    spikes, mems = [], []
    for t in range(num_steps):
        xt = x[0] if x.shape[0] == 1 else x[t]
        u = _membrane(u, xt, s_prev, b, th, reset)
        s = spike_fn(u - th, surrogate)
        s_prev = s.detach()
        spikes.append(s)
        mems.append(u)
    return torch.stack(spikes), torch.stack(mems)


def _as_param(value, dtype, neuron_shape, what) -> torch.Tensor:
    """Scalar or per-neuron tensor -> 1-D tensor of length 1 or prod(neuron_shape)."""
    p = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    p = p.to(dtype)
    if p.numel() == 1:
        return p.reshape(1)
    try:
        return p.expand(neuron_shape).reshape(-1)
    except RuntimeError:
        raise ConfigError(
            f"{what} of shape {tuple(p.shape)} does not broadcast to the neuron shape "
            f"{tuple(neuron_shape)}; give a scalar or a tensor of that shape"
        ) from None


def leaky_multistep(
    x: torch.Tensor,
    beta: float | torch.Tensor = 0.9,
    threshold: float | torch.Tensor = 1.0,
    surrogate: str | Surrogate = "fast_sigmoid",
    reset: ResetMode = "subtract",
    *,
    time_dim: int = 1,
    num_steps: int | None = None,
    mem0: torch.Tensor | None = None,
    fused: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run LIF neurons over all time steps; return ``(spikes, membrane)``, both shaped like ``x``
    with a time axis (``[B, T, ...]`` for ``time_dim=1``, ``[T, B, ...]`` for ``time_dim=0``).

    ``x``: input current, ``[B, T, *neurons]`` (batch-first, default) or ``[T, B, *neurons]``.
    With ``num_steps`` given, ``x`` is ``[B, *neurons]``: the same input at every step (direct
    encoding), read once. ``beta``/``threshold``: scalars or tensors broadcastable to the neuron
    shape (tensors that require grad are learned). ``mem0``: initial membrane ``[B, *neurons]``.
    ``fused``: ``None`` picks the compiled kernel when possible, ``False`` forces the PyTorch loop.
    """
    if time_dim not in (0, 1):
        raise ConfigError(f"time_dim must be 0 (time-first) or 1 (batch-first), got {time_dim}")
    if reset not in _RESET_CODE:
        raise ConfigError(f"reset must be one of {sorted(_RESET_CODE)}, got {reset!r}")
    sur = surrogate if isinstance(surrogate, Surrogate) else get_surrogate(surrogate)
    if not torch.is_floating_point(x):
        x = x.float()
    if num_steps is not None:
        if num_steps < 1:
            raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
        if x.dim() < 1:
            raise ConfigError("static input needs at least a batch dimension")
        B, neuron_shape, T = x.shape[0], x.shape[1:], int(num_steps)
        x2 = x.reshape(1, -1)
    else:
        if x.dim() < 2:
            raise ConfigError(
                f"input of shape {tuple(x.shape)} has no time axis: expected "
                "[B, T, ...] (or [T, B, ...] with time_dim=0), or pass num_steps "
                "for a static input"
            )
        xt = x if time_dim == 0 else x.transpose(0, 1)
        T, B, neuron_shape = xt.shape[0], xt.shape[1], xt.shape[2:]
        x2 = xt.reshape(T, -1)
    M = x2.shape[1]
    b = _as_param(beta, x.dtype, neuron_shape, "beta").clamp(0.0, 1.0)
    th = _as_param(threshold, x.dtype, neuron_shape, "threshold")
    if mem0 is None:
        u0 = torch.zeros(M, dtype=x.dtype)
    else:
        if tuple(mem0.shape) != (B, *neuron_shape):
            raise ConfigError(f"mem0 has shape {tuple(mem0.shape)}, expected {(B, *neuron_shape)}")
        u0 = mem0.to(x.dtype).reshape(-1)
    can_fuse = (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and sur.code >= 0
        and b.device.type == "cpu"
        and th.device.type == "cpu"
    )
    if fused is None:
        fused = can_fuse
    elif fused and not can_fuse:
        raise ConfigError(
            "the fused LIF kernel needs a float32/float64 CPU tensor and a built-in surrogate; use fused=None or False"
        )
    if fused:
        S, U = _LeakyFused.apply(x2.contiguous(), b.contiguous(), th.contiguous(), u0.contiguous(), T, reset, sur)
    else:
        S, U = _unfused(x2, b, th, u0, T, reset, sur)
    S = S.view(T, B, *neuron_shape)
    U = U.view(T, B, *neuron_shape)
    if time_dim == 1:
        S, U = S.transpose(0, 1), U.transpose(0, 1)
    return S, U


class Leaky(torch.nn.Module):
    """LIF activation over a whole sequence: ``spikes = Leaky(params)(current)``.

    Input ``[B, T, *neurons]`` (or ``[T, B, ...]`` with ``time_first=True``); with ``num_steps`` in
    :meth:`forward` a static ``[B, *neurons]`` input is repeated over that many steps. Returns the
    spikes (and the membrane with ``return_mem=True``). ``threshold`` is a buffer (saved in
    ``state_dict``; threshold annealing edits it in place) unless ``learn_threshold``, in which case
    it is an ``nn.Parameter``; the same holds for ``beta``.
    """

    def __init__(
        self,
        params: LeakyParams | None = None,
        *,
        time_first: bool = False,
        return_mem: bool = False,
        fused: bool | None = None,
        **kwargs,
    ):
        super().__init__()
        if params is None:
            params = LeakyParams.from_dict(kwargs)
        elif kwargs:
            params = params.replace(**kwargs)
        self.params = params
        self.surrogate = params.make_surrogate()
        self.time_first = time_first
        self.return_mem = return_mem
        self.fused = fused
        beta = torch.tensor(params.beta)
        theta = torch.tensor(params.threshold)
        if params.learn_beta:
            self.beta = torch.nn.Parameter(beta)
        else:
            self.register_buffer("beta", beta)
        if params.learn_threshold:
            self.threshold = torch.nn.Parameter(theta)
        else:
            self.register_buffer("threshold", theta)

    def forward(self, x: torch.Tensor, mem0: torch.Tensor | None = None, num_steps: int | None = None):
        s, u = leaky_multistep(
            x,
            self.beta,
            self.threshold,
            self.surrogate,
            self.params.reset,
            time_dim=0 if self.time_first else 1,
            num_steps=num_steps,
            mem0=mem0,
            fused=self.fused,
        )
        return (s, u) if self.return_mem else s

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"beta={float(self.beta):.4g}, threshold={float(self.threshold):.4g}, "
            f"surrogate={self.surrogate.name}(slope={self.surrogate.slope:g}), reset={p.reset}"
        )


def leaky_step(
    x: torch.Tensor,
    mem: torch.Tensor,
    beta: float | torch.Tensor,
    threshold: float | torch.Tensor,
    surrogate: str | Surrogate = "fast_sigmoid",
    reset: ResetMode = "subtract",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step of the same recurrence (for custom loops): returns ``(spikes, new_mem)``.
    The reset uses ``H(mem - threshold)`` of the incoming membrane, detached."""
    sur = surrogate if isinstance(surrogate, Surrogate) else get_surrogate(surrogate)
    if reset not in _RESET_CODE:
        raise ConfigError(f"reset must be one of {sorted(_RESET_CODE)}, got {reset!r}")
    if not isinstance(beta, torch.Tensor):
        beta = torch.tensor(float(beta), dtype=x.dtype)
    beta = beta.clamp(0.0, 1.0)
    s_prev = (mem > threshold).to(x.dtype).detach()
    mem = _membrane(mem, x, s_prev, beta, threshold, reset)
    return spike_fn(mem - threshold, sur), mem

"""The counterfactual generator of paper 004 (§3.5, App. F): a conditional autoencoder-GAN.

**Generator** (§3.5, App. F "four convolutional layers in the encoder, combined with class
information via one-hot encoding, and a decoder with transposed convolutions"):

* encoder ``E_x``: four 3×3 convolutions (32, 64, 128, 128 channels; strides 2, 2, 2, 1;
  padding 1; LeakyReLU 0.2), flattened, a linear map to ``latent_dim`` and a layer norm
  without parameters: each ``z_x`` has mean 0 and variance 1 over its ``latent_dim``
  entries, so the scale of a latent perturbation ``δ ~ N(0, σ²)`` means the same for every
  model (28×28: 28 → 14 → 7 → 4 → 4). (A ``tanh`` bound saturated within the first epochs
  under the summed ℓ1 loss: every input got the same ±1 code and the decoder one image per
  class.)
* ``z = [z_x + δ; o(y*)]`` with ``o(y*)`` the one-hot target class (Kronecker delta) and
  ``δ = 0`` unless given (the Remark of §3.5: perturbations of ``z_x`` give several distinct
  counterfactuals ``D([z_x + δ_i; o(y*)])``);
* decoder ``D``: a linear map back to the last encoder map, then four 3×3 transposed
  convolutions mirroring the encoder (strides 1, 2, 2, 2; the output padding of each is
  chosen so that every map has exactly the encoder's size, so any H×W works: 8×8 as
  well as 28×28), ReLU between them and ``tanh`` at the end: an image in [−1, 1], the
  dataset's normalised space.

No batch normalisation: the generator gives the same output in train and eval mode.

**Discriminator**: three 3×3 convolutions (32, 64, 128 channels, strides 2, 2, 2,
LeakyReLU 0.2) and a linear map to one logit (real vs generated). It is **not** conditioned
on the class: §3.5 says it "distinguish[es] between original data samples and those
produced by the generator"; the class enters only through the generator and the
nearest-neighbour term.

**Loss** (§3.5): ``L = (1 − λ)·L_GAN + λ·d(x*, x_nn)``, λ = 0.1 (App. F):

* ``L_GAN``: the non-saturating generator loss ``BCE(D(x*), real)``; the discriminator
  minimises ``(BCE(D(x), real) + BCE(D(x*), fake)) / 2`` on the same batch of real ``x``;
* ``d``: the ℓ1 norm (App. F: "Regularization metric: ℓ1-norm"), i.e. the **sum** of
  ``|x* − x_nn|`` over the pixels of one image (normalised units), averaged over the batch.
  (A per-pixel mean would divide the term by H·W = 784 and leave λ = 0.1 almost no weight
  next to ``L_GAN``.)
* ``x_nn``: the nearest real sample **of the target class** to the input ``x`` (ℓ1 in
  pixel space, the paper's metric) within a random subset of the training set
  (``nn_fraction`` = 10 %, §3.5: "trained on a small random subset of the training set
  (e.g., 10 %), which is afterwards discarded"). The subset is drawn per class (seeded;
  at least one image of every class, so every target has a neighbour); the input itself is
  never its own neighbour. The neighbour table (one index per training image and class) is
  computed once, in chunks; neither it nor the subset is returned or saved.
* **Targets during training**: drawn uniformly at random, per image and per step, among
  the classes *other than the classifier's prediction* on the image (a counterfactual
  changes the decision; at generation time, for a misclassified sample, the target is the
  true label, which differs from the prediction too).
* **Validity term** (not in the paper): ``cls_weight · CE(f(x*), y*)`` with ``f`` the
  frozen classifier. Default 0, i.e. the paper's loss; validity comes from the
  nearest-neighbour term (``x*`` is pulled towards a real image of the target class) and
  from choosing among latent candidates (:mod:`causalxai.counterfactual.counterfactuals`).
  ``history['validity']`` reports, after each epoch, the share of counterfactuals of a
  fixed seeded batch of ``n_eval`` training images (targets drawn as above) that the
  classifier assigns to their target, and ``loss_cls`` their cross-entropy (the training
  batches' mean when ``cls_weight > 0``). Evaluating every training batch would cost more
  than the GAN step itself: the classifier (AlexNet) is the largest network here.

Optimisers: Adam, lr 1e-3, torch defaults otherwise (App. F: "default parameters"), one
discriminator step then one generator step per batch. Seeded: the batch order, targets and
latent noise come from one ``torch.Generator``, the initial weights from the seed inside a
forked RNG; the same data, classifier and seed give the same weights on the CPU.

**Training subset** (§3.5: "we train the counterfactual generator on a small random subset of
the training set (e.g., 10 %), which is afterwards discarded"): the GAN sees only a seeded,
class-stratified ``train_fraction`` of the training split (:func:`nn_subset`, default 10 %),
drawn with the same seed as the neighbours' ``nn_fraction`` pool, so with equal fractions the
two are one subset, the paper's. ``n_train`` in the history counts it, ``n_split`` the split.

**Epochs.** App. F trains 100 epochs; so does the default. On the embedded digits the 10 %
subset is 145 images (3 batches of 64): 100 epochs took 54 s on 2 shared CPU cores (AlexNet
target; median 0.23 s an epoch, the first four 4-6 s each while other jobs held the cores). The
validity of the generated training counterfactuals was 0.12 at epoch 30, 0.20 at 50 and 0.99
at 100: on 145 images the former default of 30 epochs is far from enough.

Checkpoints (:func:`save_gan`, :func:`load_gan`) are a ``torch.save`` of a plain dict read
with ``weights_only=True``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from causalxai.checks import refuse
from causalxai.io import atomic_path, describe
from causalxai.progress import Progress
from causalxai.runtime import adam, predict, resolve_device
from causalxai.tracer.settings import Settings, integer, number, optional, setting

__all__ = [
    "FORMAT",
    "CounterfactualGenerator",
    "Discriminator",
    "GanSettings",
    "history_dataset",
    "load_gan",
    "nearest_neighbours",
    "nn_subset",
    "save_gan",
    "train_counterfactual_gan",
]

FORMAT = "causalxai-counterfactual-gan"
ENC_CHANNELS = (32, 64, 128, 128)
ENC_STRIDES = (2, 2, 2, 1)
DISC_CHANNELS = (32, 64, 128)


def _conv_out(size: int, stride: int) -> int:
    return (size + 2 - 3) // stride + 1  # kernel 3, padding 1


class CounterfactualGenerator(nn.Module):
    """``x (N, C, H, W)``, target ``(N,)`` [, ``delta (N, latent_dim)``] → ``x* (N, C, H, W)`` in [−1, 1]."""

    def __init__(self, in_channels: int = 1, height: int = 28, width: int = 28, n_classes: int = 10,
                 latent_dim: int = 32):
        super().__init__()
        if min(height, width) < 1 or in_channels < 1 or n_classes < 2 or latent_dim < 1:
            raise ValueError(
                f"CounterfactualGenerator: need positive sizes and at least 2 classes, got in_channels={in_channels}, "
                f"height={height}, width={width}, n_classes={n_classes}, latent_dim={latent_dim}"
            )
        self.config = {"in_channels": int(in_channels), "height": int(height), "width": int(width),
                       "n_classes": int(n_classes), "latent_dim": int(latent_dim)}
        self.n_classes, self.latent_dim = int(n_classes), int(latent_dim)
        sizes = [(int(height), int(width))]
        enc: list[nn.Module] = []
        c_in = in_channels
        for c, s in zip(ENC_CHANNELS, ENC_STRIDES):
            enc += [nn.Conv2d(c_in, c, 3, stride=s, padding=1), nn.LeakyReLU(0.2)]
            sizes.append((_conv_out(sizes[-1][0], s), _conv_out(sizes[-1][1], s)))
            c_in = c
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.bottom = (ENC_CHANNELS[-1], *sizes[-1])
        flat = ENC_CHANNELS[-1] * sizes[-1][0] * sizes[-1][1]
        self.to_latent = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Linear(latent_dim + n_classes, flat)
        dec: list[nn.Module] = []
        out_channels = [*ENC_CHANNELS[::-1][1:], in_channels]  # 128, 64, 32, C
        c_in = ENC_CHANNELS[-1]
        for level, (c, s) in enumerate(zip(out_channels, ENC_STRIDES[::-1])):
            h_in, w_in = sizes[-1 - level]
            h_out, w_out = sizes[-2 - level]
            op = (h_out - ((h_in - 1) * s - 2 + 3), w_out - ((w_in - 1) * s - 2 + 3))
            if not all(0 <= o < s or o == 0 for o in op):  # torch needs output_padding < stride
                raise ValueError(f"CounterfactualGenerator: cannot mirror the encoder for a {height}x{width} input")
            dec.append(nn.ConvTranspose2d(c_in, c, 3, stride=s, padding=1, output_padding=op))
            if level < len(out_channels) - 1:
                dec.append(nn.ReLU())
            c_in = c
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``z_x = E_x(x)``, ``(N, latent_dim)``, each row standardised (mean 0, variance 1)."""
        return F.layer_norm(self.to_latent(self.encoder(x)), (self.latent_dim,))

    def decode(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``D([z; o(y*)])``: an image in [−1, 1] per row of ``z``."""
        onehot = F.one_hot(target.long(), self.n_classes).to(z.dtype)
        h = F.relu(self.from_latent(torch.cat([z, onehot], 1)))
        return torch.tanh(self.decoder(h.view(-1, *self.bottom)))

    def forward(self, x: torch.Tensor, target: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        z = self.encode(x)
        if delta is not None:
            z = z + delta
        return self.decode(z, target)


class Discriminator(nn.Module):
    """Real vs generated: ``x (N, C, H, W)`` → one logit per image (not class-conditional)."""

    def __init__(self, in_channels: int = 1, height: int = 28, width: int = 28):
        super().__init__()
        self.config = {"in_channels": int(in_channels), "height": int(height), "width": int(width)}
        layers: list[nn.Module] = []
        c_in, h, w = in_channels, int(height), int(width)
        for c in DISC_CHANNELS:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in, h, w = c, _conv_out(h, 2), _conv_out(w, 2)
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * h * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


# ---------------------------------------------------------------------------------------
# nearest neighbours of the target class


def nn_subset(labels: torch.Tensor | np.ndarray, fraction: float, n_classes: int, seed: int, *,
              what: str = "tracer.counterfactual_gan.nn_fraction") -> np.ndarray:
    """Indices (sorted) of a random training subset, stratified by class: the one the
    neighbours come from (``nn_fraction``) or the one the GAN trains on (``train_fraction``,
    ``what`` names it in errors).

    Per class ``c`` with ``n_c`` images, ``max(1, ⌊fraction · n_c + ½⌋)`` of them drawn
    without replacement (``numpy.random.default_rng(seed)``); a class without images is
    an error (its counterfactuals would have no neighbour).
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"{what} must lie in (0, 1], got {fraction}")
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    rng = np.random.default_rng(int(seed))
    out = []
    for c in range(int(n_classes)):
        idx = np.flatnonzero(y == c)
        if idx.size == 0:
            raise ValueError(f"the training set has no image of class {c}: no target-class neighbour for it")
        out.append(rng.choice(idx, size=max(1, int(np.floor(float(fraction) * idx.size + 0.5))), replace=False))
    return np.sort(np.concatenate(out))


def nearest_neighbours(
    x: torch.Tensor,
    ref: torch.Tensor,
    ref_labels: torch.Tensor,
    n_classes: int,
    *,
    exclude: torch.Tensor | None = None,
    chunk: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every row of ``x`` and every class ``c``: the index into ``ref`` of the ℓ1-nearest
    reference image of class ``c`` and its distance.

    Args:
        x: ``(N, ...)`` images; ref: ``(M, ...)`` reference images; ref_labels: ``(M,)``.
        exclude: optional ``(N, M)`` bool, or ``(N,)`` long giving for each row of ``x`` one
            reference index to skip (−1: none), e.g. the image itself.
        chunk: rows of ``x`` per distance block.

    Returns:
        ``index (N, n_classes)`` int64 (−1 when the class has no eligible reference) and
        ``distance (N, n_classes)`` (``inf`` then). Ties go to the lower reference index.
    """
    xf = x.reshape(len(x), -1).to(torch.float32)
    rf = ref.reshape(len(ref), -1).to(device=xf.device, dtype=torch.float32)
    rl = torch.as_tensor(ref_labels, device=xf.device).long()
    index = torch.full((len(x), n_classes), -1, dtype=torch.long, device=xf.device)
    dist = torch.full((len(x), n_classes), float("inf"), dtype=torch.float32, device=xf.device)
    if len(rf) == 0:
        return index, dist
    inf = torch.tensor(float("inf"), device=xf.device)
    for start in range(0, len(xf), chunk):
        d = torch.cdist(xf[start : start + chunk], rf, p=1.0)  # (b, M)
        if exclude is not None:
            ex = torch.as_tensor(exclude, device=xf.device)[start : start + chunk]
            if ex.dim() == 1:
                rows = torch.nonzero(ex >= 0).squeeze(1)
                d[rows, ex[rows]] = inf
            else:
                d = torch.where(ex.bool(), inf, d)
        for c in range(n_classes):
            members = torch.nonzero(rl == c).squeeze(1)
            if members.numel() == 0:
                continue
            dc, j = d[:, members].min(1)
            ok = torch.isfinite(dc)
            index[start : start + chunk, c] = torch.where(ok, members[j], torch.full_like(j, -1))
            dist[start : start + chunk, c] = dc
    return index, dist


# ---------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class GanSettings(Settings):
    """The counterfactual GAN's training settings (module docstring; ``tracer.counterfactual_gan``).

    Attributes:
        epochs, batch_size, lr: Adam's schedule (App. F: lr 1e-3, 100 epochs).
        lam: λ of ``(1 − λ)·L_GAN + λ·‖x* − x_nn‖₁`` (App. F: 0.1).
        latent_dim: size of ``z_x``.
        nn_fraction: share of the training set the neighbours come from (§3.5: 10 %).
        train_fraction: share of the training set the GAN trains on (§3.5: "a small random
            subset of the training set (e.g., 10 %)"; 1: all of it).
        cls_weight: weight of the optional validity term ``CE(f(x*), y*)`` (0: the paper's loss).
        latent_noise: σ of a latent perturbation ``δ ~ N(0, σ²)`` added to ``z_x`` during
            training (0: none; the paper perturbs at generation time).
        n_classes: number of classes (None: the classifier's output width).
        n_eval: training images in the fixed batch the validity history is measured on.
        seed: the batch order's, targets', noise's and initial weights' seed.
    """

    SECTION: ClassVar[str] = "tracer.counterfactual_gan"
    CONFIG_KEYS: ClassVar[Mapping[str, str]] = {"seed": "seed"}

    epochs: int = setting(30, integer(0))
    batch_size: int = setting(64, integer(1))
    lr: float = setting(1e-3, number(0.0))
    lam: float = setting(0.1, number(0.0, 1.0, what=" (λ of (1 − λ)·L_GAN + λ·‖x* − x_nn‖₁)"))
    latent_dim: int = setting(32, integer(1))
    nn_fraction: float = setting(0.1, number(0.0, 1.0))
    train_fraction: float = setting(0.1, number(0.0, 1.0))
    cls_weight: float = setting(0.0, number(0.0))
    latent_noise: float = setting(0.0, number(0.0))
    n_classes: int | None = setting(None, optional(integer(2)))
    n_eval: int = setting(256, integer(1))
    seed: int = setting(0, integer(0))



def train_counterfactual_gan(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    classifier: nn.Module,
    settings: GanSettings | None = None,
    *,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> tuple[CounterfactualGenerator, Discriminator, dict[str, Any]]:
    """Train the counterfactual GAN (module docstring) on normalised images ``x_train (N, C, H, W)``.

    Args:
        x_train, y_train: training images (in [−1, 1]) and labels.
        classifier: the model being explained (logits); frozen, used for the training
            targets (other than its prediction), the validity history and ``cls_weight``.
        settings: :class:`GanSettings` (default: its defaults).
        device: where to train (``"auto"``: CUDA when present).
        progress: log the epochs at a steady rate.

    Returns:
        ``(generator, discriminator, history)``, both models in eval mode on the CPU;
        history holds per-epoch lists ``epoch, loss_g, loss_d, loss_gan, loss_l1, loss_cls,
        validity, seconds`` and ``n_train``, ``n_nn_subset``, ``train_seconds``, the settings.

    Raises:
        causalxai.checks.DegenerateResultError: the training diverged (the last epoch's
            generator or discriminator loss is not finite): the generator's weights are NaN
            and every counterfactual would be NaN.
    """
    st = settings or GanSettings()
    epochs, batch_size, lr, lam, latent_dim = st.epochs, st.batch_size, st.lr, st.lam, st.latent_dim
    nn_fraction, cls_weight, latent_noise, n_classes, n_eval, seed = (
        st.nn_fraction, st.cls_weight, st.latent_noise, st.n_classes, st.n_eval, st.seed)
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    x = torch.as_tensor(x_train, dtype=torch.float32)
    y = torch.as_tensor(y_train).long().reshape(-1)
    if x.dim() != 4 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"train_counterfactual_gan: need images (N, C, H, W) and N labels, "
                         f"got {tuple(x.shape)}, {tuple(y.shape)}")
    classifier = classifier.to(dev).eval()
    x, y = x.to(dev), y.to(dev)
    if n_classes is None:
        with torch.no_grad():
            n_classes = int(classifier(x[:1]).shape[1])
    n_classes = int(n_classes)
    t_start = time.perf_counter()
    n_split = len(x)
    # §3.5: the GAN trains on a seeded class-stratified subset; the neighbours' pool is drawn with the
    # same seed, so with equal fractions both are the same subset (the paper's single 10 %)
    train_idx = torch.as_tensor(
        nn_subset(y.cpu(), st.train_fraction, n_classes, seed, what="tracer.counterfactual_gan.train_fraction"),
        device=dev)
    subset = torch.as_tensor(nn_subset(y.cpu(), nn_fraction, n_classes, seed), device=dev)
    self_pos = torch.full((n_split,), -1, dtype=torch.long, device=dev)
    self_pos[subset] = torch.arange(len(subset), device=dev)
    nn_index, _ = nearest_neighbours(x[train_idx], x[subset], y[subset], n_classes, exclude=self_pos[train_idx])
    # a class whose only subset image is the input itself: fall back to any image of the class
    missing = nn_index < 0
    if bool(missing.any()):
        for c in torch.unique(torch.nonzero(missing)[:, 1]).tolist():
            nn_index[missing[:, c], c] = int(torch.nonzero(y[subset] == c)[0])
    x_nn_pool = x[subset].clone()  # the subset, dropped when training ends
    n_subset = int(len(subset))
    x, y = x[train_idx], y[train_idx]
    pred = predict(classifier, x, batch_size=512, output="label").to(dev)

    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        gen_model = CounterfactualGenerator(x.shape[1], x.shape[2], x.shape[3], n_classes, latent_dim).to(dev)
        disc = Discriminator(x.shape[1], x.shape[2], x.shape[3]).to(dev)
    opt_g = adam(gen_model.parameters(), lr=lr)
    opt_d = adam(disc.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(int(seed) + 1)
    # validity is measured after each epoch on a fixed seeded evaluation batch (the
    # classifier's forward would otherwise cost more than the GAN's own step)
    n = len(x)
    eval_idx = torch.randperm(n, generator=rng)[: min(int(n_eval), len(x))].to(dev)
    eval_target = ((pred[eval_idx] + torch.randint(1, n_classes, (len(eval_idx),), generator=rng).to(dev)) % n_classes)
    keys = ("epoch", "loss_g", "loss_d", "loss_gan", "loss_l1", "loss_cls", "validity", "seconds")
    hist: dict[str, Any] = {k: [] for k in keys}
    req = [p.requires_grad for p in classifier.parameters()]
    for p in classifier.parameters():
        p.requires_grad_(False)
    try:
        counter = Progress(epochs, "counterfactual GAN", "epochs", enabled=progress)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            gen_model.train()
            disc.train()
            perm = torch.randperm(n, generator=rng).to(dev)
            sums = dict.fromkeys(("loss_g", "loss_d", "loss_gan", "loss_l1", "loss_cls_train"), 0.0)
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                xb = x[idx]
                shift = torch.randint(1, n_classes, (len(idx),), generator=rng).to(dev)
                target = (pred[idx] + shift) % n_classes  # uniform among the other classes
                x_nn = x_nn_pool[nn_index[idx, target]]
                delta = None
                if latent_noise > 0:
                    delta = (torch.randn((len(idx), latent_dim), generator=rng) * float(latent_noise)).to(dev)
                fake = gen_model(xb, target, delta)

                real_logit, fake_logit = disc(xb), disc(fake.detach())
                loss_d = 0.5 * (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                                + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()

                logit = disc(fake)
                loss_gan = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
                loss_l1 = (fake - x_nn).abs().flatten(1).sum(1).mean()
                loss_g = (1.0 - lam) * loss_gan + lam * loss_l1
                if cls_weight > 0:
                    loss_cls = F.cross_entropy(classifier(fake), target)
                    loss_g = loss_g + cls_weight * loss_cls
                    sums["loss_cls_train"] += float(loss_cls.detach()) * len(idx)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()

                b = len(idx)
                for k, v in (("loss_g", loss_g), ("loss_d", loss_d), ("loss_gan", loss_gan), ("loss_l1", loss_l1)):
                    sums[k] += float(v.detach()) * b
            gen_model.eval()
            with torch.no_grad():
                out = torch.cat([classifier(gen_model(x[eval_idx[i : i + batch_size]], eval_target[i : i + batch_size]))
                                 for i in range(0, len(eval_idx), batch_size)])
            eval_cls = float(F.cross_entropy(out, eval_target))
            hist["epoch"].append(epoch)
            for k in ("loss_g", "loss_d", "loss_gan", "loss_l1"):
                hist[k].append(sums[k] / n)
            hist["loss_cls"].append(sums["loss_cls_train"] / n if cls_weight > 0 else eval_cls)
            hist["validity"].append(float((out.argmax(1) == eval_target).float().mean()))
            hist["seconds"].append(time.perf_counter() - t0)
            counter.update(note=f"loss_g {hist['loss_g'][-1]:.3f}, l1 {hist['loss_l1'][-1]:.1f}, "
                              f"validity {hist['validity'][-1]:.3f}")
    finally:
        for p, r in zip(classifier.parameters(), req):
            p.requires_grad_(r)
    del x_nn_pool, nn_index, subset, x, y  # §3.5: the training subset is discarded
    for key in ("loss_g", "loss_d"):
        if hist[key] and not np.isfinite(hist[key][-1]):
            refuse("counterfactual_gan", f"the GAN's {key}",
                   f"not finite at the last epoch ({hist[key][-1]}; the training diverged and the weights are NaN)",
                   causes=f"a learning rate too high (tracer.counterfactual_gan.lr: {lr})",
                   fix="lower tracer.counterfactual_gan.lr (e.g. by 10x)")
    hist.update(
        n_train=int(n), n_split=int(n_split), train_fraction=float(st.train_fraction), n_nn_subset=n_subset,
        train_seconds=time.perf_counter() - t_start, lam=float(lam), lr=float(lr),
        latent_dim=int(latent_dim), nn_fraction=float(nn_fraction), cls_weight=float(cls_weight),
        latent_noise=float(latent_noise), batch_size=int(batch_size), n_classes=n_classes, seed=int(seed),
    )
    return gen_model.cpu().eval(), disc.cpu().eval(), hist


def history_dataset(history: dict[str, Any]) -> xr.Dataset:
    """``counterfactual_gan.nc``: the per-epoch curves on dim ``epoch`` and the settings as attrs."""
    per_epoch = ("loss_g", "loss_d", "loss_gan", "loss_l1", "loss_cls", "validity", "seconds")
    ds = xr.Dataset(
        {k: ("epoch", np.asarray(history[k], dtype=np.float64)) for k in per_epoch},
        coords={"epoch": np.asarray(history["epoch"], dtype=np.int64)},
        attrs={k: v for k, v in history.items() if k not in (*per_epoch, "epoch")},
    )
    desc = {
        "loss_g": "generator loss (1 - lam) * loss_gan + lam * loss_l1 (+ cls_weight * loss_cls), epoch mean",
        "loss_d": "discriminator loss (BCE on real + BCE on generated) / 2",
        "loss_gan": "non-saturating GAN loss of the generator, BCE(D(x*), real)",
        "loss_l1": "l1 norm (sum over pixels, normalised units) of x* - x_nn, x_nn the nearest target-class "
                   "image of the training subset",
        "loss_cls": "cross-entropy of the classifier on x* against the target (a loss term only if cls_weight > 0)",
        "validity": "share of the epoch's generated counterfactuals the classifier assigns to their target",
        "seconds": "wall time of the epoch",
    }
    describe(ds, desc)
    ds.attrs["description"] = ("training of the counterfactual autoencoder-GAN (paper 004 §3.5, App. F): "
                               "L = (1 - lam) L_GAN + lam ||x* - x_nn||_1")
    return ds


# ---------------------------------------------------------------------------------------
# checkpoints


def save_gan(generator: CounterfactualGenerator, discriminator: Discriminator | None,
             path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> None:
    """Write generator (and discriminator) weights and configs atomically (``torch.save`` of a dict)."""
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "generator_config": dict(generator.config),
        "generator": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "meta": {str(k): v for k, v in (meta or {}).items() if isinstance(v, (int, float, str, bool))},
    }
    if discriminator is not None:
        ckpt["discriminator_config"] = dict(discriminator.config)
        ckpt["discriminator"] = {k: v.detach().cpu() for k, v in discriminator.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_gan(path: str | os.PathLike[str]) -> tuple[CounterfactualGenerator, Discriminator | None, dict[str, Any]]:
    """Rebuild ``(generator, discriminator or None, meta)`` from :func:`save_gan`'s file, eval mode, CPU.

    Read with ``weights_only=True``; anything else gives a ``ValueError`` naming the file.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ValueError(f"{path}: not a readable counterfactual-GAN checkpoint ({exc}); delete it and re-run "
                         "counterfactual_gan") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or not {"generator_config", "generator"} <= set(ckpt):
        raise ValueError(f"{path}: not a counterfactual-GAN checkpoint (needs format {FORMAT!r}, generator_config, "
                         "generator); delete it and re-run counterfactual_gan")
    try:
        gen = CounterfactualGenerator(**dict(ckpt["generator_config"]))
        gen.load_state_dict(ckpt["generator"])
        disc = None
        if "discriminator" in ckpt:
            disc = Discriminator(**dict(ckpt["discriminator_config"]))
            disc.load_state_dict(ckpt["discriminator"])
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the weights do not fit the stored configuration: {exc}") from exc
    return gen.eval(), (disc.eval() if disc is not None else None), dict(ckpt.get("meta", {}))

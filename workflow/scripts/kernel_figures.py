"""Rule kernel_figures: paper 000 Fig. 7 (kernel dissimilarities of one treatment on one image)
and Fig. 8 (the ITE of the optimizer on E under each kernel)."""

from causalxai.io import open as open_result, open_lazy
from causalxai.plots.kernel_figures import plot_kernel_comparison, plot_kernel_examples
from causalxai.study.kernel_figures import KernelExampleSettings, kernel_comparison, kernel_examples
from causalxai.zoo.dataset import open_hparams

from common import start

start(snakemake)

p = snakemake.params
inp = snakemake.input
zoo, images = open_hparams(inp.zoo), open_result(inp.images)
maps = {m: open_lazy(inp[f"E_{m}"], variables=["E"]) for m in p.methods}  # read a group's models at a time
first = p.methods[0]
maps[first].attrs["method"] = first
examples = kernel_examples(
    zoo, open_result(inp.buckets), open_result(inp.predictions), maps[first],
    KernelExampleSettings.from_params(p.fig7, p.seed, p.log_rounding),
    label=int(images["label"].values[p.fig7["image"]]),
)

plot_kernel_examples(examples, snakemake.output.heatmaps)
frame = kernel_comparison(zoo, maps, hparam=p.fig8_hparam, cap=p.cap, seed=p.seed, log_rounding=p.log_rounding)
plot_kernel_comparison(frame, snakemake.output.comparison, hparam=p.fig8_hparam)

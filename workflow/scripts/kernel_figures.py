"""Rule kernel_figures: paper 000 Fig. 7 (kernel dissimilarities of one treatment on one image)
and Fig. 8 (the ITE of the optimizer on E under each kernel)."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # noqa: F821

from causalxai.study.kernel_figures import KernelExampleSettings, kernel_comparison, kernel_examples  # noqa: E402
from causalxai.io import open as open_result  # noqa: E402
from causalxai.plots.kernel_figures import plot_kernel_comparison, plot_kernel_examples  # noqa: E402

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
zoo, images = open_result(inp.zoo), open_result(inp.images)
maps = {m: open_result(inp[f"E_{m}"], variables=["E"]) for m in p.methods}
first = p.methods[0]
maps[first].attrs["method"] = first
examples = kernel_examples(
    zoo, open_result(inp.buckets), open_result(inp.predictions), maps[first],
    KernelExampleSettings.from_params(p.fig7, p.seed, p.log_rounding), label=int(images["label"].values[p.fig7["image"]]),
)
plot_kernel_examples(examples, snakemake.output.heatmaps)  # noqa: F821
frame = kernel_comparison(zoo, maps, hparam=p.fig8_hparam, cap=p.cap, seed=p.seed, log_rounding=p.log_rounding)
plot_kernel_comparison(frame, snakemake.output.comparison, hparam=p.fig8_hparam)  # noqa: F821

"""Paper 000 Fig. 7 and Fig. 8 (rule kernel_figures): drawn from the data of causalxai.study.kernel_figures."""

from causalxai.plots.kernel_figures import plot_kernel_comparison, plot_kernel_examples
from causalxai.study.kernel_figures import KernelExampleSettings, kernel_comparison, kernel_examples


def test_kernel_figures_are_written(tmp_path, effect_inputs):
    zoo, buckets, pred, e = effect_inputs(60, 3, 4, seed=1)
    ex = kernel_examples(zoo, buckets, pred, e, KernelExampleSettings(hparam="dropout", value="0", image=1, n=5),
                         label=4)
    before = ex.copy(deep=True)
    plot_kernel_examples(ex, tmp_path / "k7.png")
    assert ex.identical(before)
    frame = kernel_comparison(zoo, {"gradient": e}, hparam="optimizer", cap=100)
    plot_kernel_comparison(frame, tmp_path / "k8.png")
    assert (tmp_path / "k7.png").stat().st_size > 10_000 and (tmp_path / "k8.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k7.png", "k8.png"]  # written atomically

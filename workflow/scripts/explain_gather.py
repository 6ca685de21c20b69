"""Rule explain_gather: one method's shards streamed into explanations/<method>.nc, normalised (App. A.3)."""

from causalxai.study.explain import ExplainSettings, gather_to_file

from common import start

start(snakemake, bounded_heap=True)

cfg = dict(snakemake.params.explain)
gather_to_file(snakemake.input.shards, snakemake.output.explanations, cfg["method"], ExplainSettings.from_config(cfg),
               config=cfg)

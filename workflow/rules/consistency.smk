# A consistent results folder (README, "A consistent results folder"). At the start of a run
# (Snakemake's onstart: a run with jobs to do, not a dry run), before any job starts:
# - device: cuda is checked (causalxai.config.check_device) when the jobs run on this machine:
#   only then does Snakemake know the executor; jobs submitted to a cluster (--profile
#   workflow/profiles/slurm) run on its GPU nodes, not on the login node parsing this file, and a
#   job's own Snakemake (not the main process) has nothing to check. Snakemake keeps one onstart
#   hook per workflow: every start-of-run check lives here;
# - the netCDF inputs the jobs read from disk are checked (causalxai.io.check_inputs): one that
#   cannot be read, or that was made from another version of its own inputs, stops the run here,
#   before Snakemake deletes the outputs of the jobs that would read it;
# - for the default target, the files under results/ that no job of the plan makes (outputs of
#   another config) are listed in a warning and in logs/stale_files.txt, with how to remove them.
# Every job checks its inputs again when it starts (workflow/scripts/common: causalxai.io.begin_job).
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from causalxai import io as result_io
from causalxai.config import check_device
from causalxai.stale import stale_files, stale_message, write_listing

#: the folder whose stale files are listed, and the listing
RESULTS_FOLDER = "results"
STALE_LISTING = "logs/stale_files.txt"


def planned_files(dag):
    """Every file the plan's jobs make, finished or not: outputs, logs and benchmarks."""
    for job in dag.jobs:
        yield from map(str, job.output)
        yield from map(str, job.log)
        if job.benchmark:
            yield str(job.benchmark)


def check_run_inputs(dag):
    """Check the netCDF files the jobs to run read and no job of this run makes; a bad one stops
    the run before any job starts (WorkflowError naming the file and the --forcerun)."""
    todo = list(dag.needrun_jobs())
    made = {os.path.normpath(f) for job in todo for f in job.output}
    read = {os.path.normpath(f) for job in todo for f in job.input} - made
    try:
        result_io.check_inputs(sorted(read))
    except (result_io.CorruptFileError, result_io.ProvenanceError) as err:
        raise WorkflowError(f"No job was started: {err}") from None


def list_stale_results(workflow):
    """For the default target (no --until, --omit-from or --batch, which plan part of it only),
    warn about the files under results/ that no job of the plan makes and list them all in
    logs/stale_files.txt (removed when there are none)."""
    settings = workflow.dag_settings
    targets = set(settings.targets)  # --forcerun and --prioritize add targets too, not other outputs
    default = not settings.target_jobs and targets <= {workflow.default_target}
    if not default or settings.until or settings.omit_from or settings.batch:
        return
    stale = stale_files(RESULTS_FOLDER, planned_files(workflow.dag))
    write_listing(stale, STALE_LISTING)
    if stale:
        logger.warning(stale_message(stale, STALE_LISTING, RESULTS_FOLDER))


onstart:
    if workflow.is_main_process and workflow.local_exec and not workflow.touch:
        check_device(config["device"])
    list_stale_results(workflow)
    if not workflow.touch:
        check_run_inputs(workflow.dag)

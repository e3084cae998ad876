"""The typed configurations: one training run (TrainConfig, what ``xlpeft train`` fills in), one language module
(LanguageModuleConfig, ``xlpeft language-module train``) and how runs are evaluated (EvalOptions, ``xlpeft evaluate``).

Each field declares its command-line help next to it (:func:`option`) and its allowed values in its ``Literal`` type;
xlpeft/cli.py derives the options, defaults and choices from them. Kept free of torch and transformers (and of
the data readers) so that the CLI starts instantly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from xlpeft.data.languages import registry as language_registry
from xlpeft.data.task_names import TASK_HELP, TASK_NAMES, SourceData, is_task_file
from xlpeft.errors import XlpeftError

if TYPE_CHECKING:
    from xlpeft.tasks import Task

# the allowed values, declared once: argparse's choices and the code that checks a value read them from here
Placement = Literal["suffix", "prefix", "start"]
Head = Literal["auto", "lm", "linear"]
Reparam = Literal["none", "mlp", "residual", "lstm"]  # prompts/soft_prompt.py
ReparamAffine = Literal["off", "on", "auto"]  # the mlp/residual LayerNorm's affine parameters (TrainConfig)
Init = Literal["uniform", "vocab", "text"]
Regime = Literal["prompt", "joint", "full"]
Select = Literal["val_loss", "val_accuracy"]
Precision = Literal["auto", "fp32", "bf16"]
Split = Literal["test", "dev", "train"]
LanguageKind = Literal["la", "slp"]  # method B's language modules: language adapter, soft language prompt
ConfigurationName = Literal["zero-shot", "ta", "tp", "la+ta", "la+tp", "slp+ta", "slp+tp"]  # modular/configurations.py
OptimizerName = Literal["adamw", "adafactor"]  # training/optim.py
NliOutput = Literal["rank", "generate"]  # evaluation/predict.py: how an encoder-decoder answers NLI
ChoiceScore = Literal["sum", "per_char"]  # heads/choice.py: how multiple-choice scores rank the choices

REGIME_HELP = {
    "prompt": "model frozen, only the soft prompt (its MLP while it exists, and a linear head if any) is trained",
    "joint": "soft prompt and the whole model trained together ('unfrozen' in the paper)",
    "full": "fine-tune the whole model with no prompt, predicting from the last text position",
}

DEVICE_HELP = "cpu, cuda, cuda:1 ...; auto = cuda when available"
PRECISION_HELP = ("bf16 autocast; auto = bf16 on GPU, fp32 on CPU. On CPUs with AVX512-BF16 bf16 trains a frozen suffix "
                  "prompt about 1.6x faster, and accuracies move by about a point, so there it is opt-in "
                  "(docs/benchmarks.md). fp32 products of the frozen model run on oneDNN on non-Intel x86 CPUs (2x MKL's "
                  "speed there); XLPEFT_CPU_MATMUL=mkl|onednn overrides")
OPTIMIZER_HELP = ("adamw: torch's AdamW; adafactor: transformers' Adafactor with the run's lr and weight decay, "
                  "no relative step or parameter scaling, the same linear warm-up (the method B paper trained "
                  "prompts with it at lr 0.5, weight decay 1e-5)")
TEMPLATE_HELP = ("input template: empty = the text as it is; 'paper' = the task's paper template for the backbone "
                 "family (Vykopal et al.'s for xnli/americasnli, wikiann/masakhaner, xquad, with Yes/Maybe/No answers on "
                 "mT5/mT0; none for sib200 and nusax); or a format string over the task's fields, e.g. '{premise} "
                 "Question: {hypothesis}' (every task has {text}). max_length counts the fields' tokens; the "
                 "template's words come on top (docs/tasks.md)")
NLI_OUTPUT_HELP = ("NLI runs on encoder-decoders (mT5/mT0): rank = score each label string and take the likeliest; "
                   "generate = greedy-generate the answer and read its first word (the paper's way: an answer that is "
                   "no label string counts as neutral, and rows count them in n_unparsed)")
CHOICE_SCORE_HELP = ("multiple-choice tasks (xcopa, xstorycloze, belebele): sum = each choice's log-likelihood "
                     "after the input, the likeliest is the prediction (lm-evaluation-harness's acc); per_char = the "
                     "log-likelihood divided by the choice's length in characters (its acc_norm: long choices are not "
                     "penalised for their length)")
MAX_GRAD_NORM_HELP = ("clip the trained parameters' global gradient norm to this before each step; default: no "
                      "clipping (Philippy et al.'s HF Trainer clipped at 1.0)")
REPARAM_HELP = ("reparameterization during training, folded into a plain prompt afterwards: mlp: Linear-ReLU-Linear-"
                "LayerNorm on each row (Philippy et al.); residual: the same plus a skip connection; lstm: PEFT's P-tuning "
                "encoder, a bidirectional 2-layer LSTM over the rows, then Linear-ReLU-Linear")
REPARAM_AFFINE_HELP = ("affine weight and bias of the mlp/residual LayerNorm, trained with the prompt: off: none (identity, "
                       "the frozen-model recipe); on: always; auto: when the model is trained (joint), as Philippy et al.'s "
                       "code did. Stored settled: auto becomes on or off, and a run without that LayerNorm stores off")
TEXT_CACHE_HELP = ("run the whole sequence every step instead of caching the text's states (the cache is on by default "
                   "where it applies: frozen model, suffix prompt; same numbers; for checking, and needed for "
                   "--frozen-dropout)")

# fields added once runs existed, with the value every earlier run implicitly had
ADDED_LATER = {"task": "sib200", "source_data": "local", "select": "val_loss", "max_grad_norm": None,
               "optimizer": "adamw", "max_steps": None, "eval_every": None, "reparam_affine": "off",
               "template": "", "task_definition": None}
MODULE_ADDED_LATER = {"max_grad_norm": None, "optimizer": "adamw"}  # the same for LanguageModuleConfig

class TaskChoices(list):
    """``--task``'s choices: the built-in task names (what ``--help`` lists), and any task definition file, a path
    ending in .yaml or .yml (read when the run is configured: ``xlpeft.tasks.task_for``)."""

    def __contains__(self, value) -> bool:
        return super().__contains__(value) or is_task_file(value)


# method B configurations without a task prompt (their prompt, if any, is the language prompt)
NO_TASK_PROMPT = ("zero-shot", "ta", "la+ta", "slp+ta")


def option(default: Any, help: str, **cli: Any) -> Any:
    """A field with its command-line help. A bool field is an on/off flag (``--no-<name>`` when on by default: its
    help says what the flag does). ``cli`` adds what the type alone does not say: ``none="all"`` (the word that
    means None), ``choices`` (a str whose values are declared elsewhere), ``required=True`` (the command line must
    name it, although configs read from files have a default), ``cli=False`` (no option: the field is filled in by
    xlpeft, not by the user)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    """Everything that decides a run's numbers; stored in RUN_DIR/config.json."""

    model: str = option("smollm2-135m", "offline model (smollm2-135m, gemma-3-270m, multilingual-e5-small), hub id "
                        "(facebook/xglm-564M, bigscience/bloom-560m, bigscience/mt0-base, FacebookAI/xlm-roberta-base, "
                        "...) or a local model directory")
    task: str = option("sib200", "; ".join(f"{name}: {text}" for name, text in TASK_HELP.items()) + " (docs/tasks.md); "
                       "or a task definition file, my_task.yaml (docs/your_task.md; 'xlpeft tasks --help')",
                       choices=TaskChoices(TASK_NAMES))
    # the definition of a task given as a file (xlpeft.tasks.task_for stores it here): the run rebuilds its task from it
    task_definition: dict | None = option(None, "the task's definition, stored from --task FILE", cli=False)
    source: str = option("", "training language in the task's codes (SIB-200: FLORES, e.g. eng_Latn; nusax/masakhaner: "
                         "eng; xquad/americasnli: en); default: the task's source. Several, comma-separated "
                         "(eng_Latn,fra_Latn,arb_Arab), train one module on all of them: k per class per language, "
                         "each language's validation loss recorded (docs/tasks.md, 'Several source languages')")
    source_data: SourceData = option("local", "where the source data come from: local copies, or the standard hub "
                                     "source where the local data have none (xquad: SQuAD v1.1 train; americasnli: "
                                     "English XNLI). Offline, xquad trains on half of XQuAD's English articles and "
                                     "evaluates the other half, and americasnli trains on one of its languages' dev "
                                     "pairs (--source quy)")
    shots: int | None = option(32, "classification: k examples per class after balanced undersampling (validation: "
                               "ceil(k/4) per class); text-to-text tasks: k examples (validation: ceil(k/4), at least "
                               "8); 'all' = whole train/dev splits", none="all")
    prompt_length: int = option(10, "L, soft prompt vectors (0 with --head linear trains the head alone)")
    placement: Placement = option("suffix", "suffix: [text][prompt][EOS] (Philippy et al.; cached on causal LMs); "
                                  "prefix: [prompt][text][EOS] (Lester et al.; after [CLS] on encoders); start: before "
                                  "every token, PEFT's layout (differs from prefix only on encoders)")
    head: Head = option("auto", "lm: the model's LM / masked-LM head with label words (encoder-decoders: label strings "
                        "scored by the decoder); linear: a trainable linear head on mean-pooled encoder states (causal: "
                        "on the prediction position); auto: lm when the model has such a head, else linear (e5)")
    reparam: Reparam = option("none", REPARAM_HELP)
    reparam_hidden: int = option(200, "hidden width h of the MLP (lstm: units per LSTM direction; its head is 2h wide)")
    reparam_affine: ReparamAffine = option("off", REPARAM_AFFINE_HELP)
    # random vocabulary embeddings: +10 points on SmolLM2 and +21.6 English / +17.9 nine-language mean on
    # Gemma-3-270M over the paper's uniform(-0.5, 0.5) (docs/backbones.md, "Defaults and what was tried")
    init: Init = option("vocab", "uniform(-0.5, 0.5) (the paper's); embeddings of random vocabulary tokens (the "
                        "default: docs/backbones.md, 'Defaults and what was tried'); or of --init-text")
    init_text: str = option("", "text whose token embeddings initialise the prompt (--init text)")
    regime: Regime = option("prompt", "; ".join(f"{k}: {v}" for k, v in REGIME_HELP.items()))
    epochs: int = option(20, "training epochs; the best epoch on the source-language validation set (--select) is kept")
    select: Select = option("val_loss", "the epoch kept: lowest validation loss, or highest validation accuracy (ties: "
                            "lower loss; text-to-text tasks always use the loss)")
    max_steps: int | None = option(None, "optimizer steps in all; when set it replaces --epochs as the budget, the data "
                                   "cycled in seeded epochs (the method B paper: 50k task steps)")
    eval_every: int | None = option(None, "validate every N optimizer steps (and after the last) instead of at each "
                                    "epoch's end; the best evaluation by --select is kept (the method B paper: 1000)")
    lr: float = option(5e-3, "learning rate of the prompt (and of the model in full)")
    lr_model: float | None = option(None, "joint/full: learning rate of the model (default: same as --lr, the paper's "
                                    "joint setting)")
    batch_size: int = option(8, "sentences per step")
    warmup_ratio: float = option(0.1, "linear warm-up share of all steps")
    weight_decay: float = option(0.01, "weight decay (the optimizer's own: decoupled in AdamW)")
    optimizer: OptimizerName = option("adamw", OPTIMIZER_HELP)
    max_grad_norm: float | None = option(None, MAX_GRAD_NORM_HELP)
    max_length: int = option(128, "text tokens per sequence, the same for every prompt length, placement, model and "
                             "configuration (prompt and special tokens come on top); longer texts are cut and the cuts "
                             "counted in each result row")
    label_words: str = option("", "override verbalizer words, e.g. 'sports= play,geography= earth' (each must be one "
                              "token, except on encoder-decoders, which score strings); default: the paper's words for "
                              "XGLM/BLOOM, space-prefixed where the tokenizer does not mark word starts itself "
                              "(byte-level BPE, Gemma)")
    text_prefix: str = option("", "prepended to every text (training and evaluation), e.g. 'query: ' as "
                              "multilingual-e5 expects")
    template: str = option("", TEMPLATE_HELP)
    seed: int = option(0, "seeds sampling, prompt init, head init, data order and dropout")
    text_cache: bool = option(True, TEXT_CACHE_HELP)
    frozen_dropout: bool = option(False, "keep dropout on in the frozen model, as the reference code did (forces the "
                                  "uncached path)")
    precision: Precision = option("auto", PRECISION_HELP)
    device: str = option("auto", DEVICE_HELP)
    # method B (modular/stack.py): "" = method A's soft prompt. The task prompt (tp) has prompt_length rows;
    # language modules come from the registry modules_dir.
    configuration: Literal["", ConfigurationName] = option(
        "", "method B (Vykopal et al.): a task adapter (ta) or task prompt (tp), alone or on top of the source "
        "language's frozen language adapter (la+) or soft language prompt (slp+) from --modules-dir; zero-shot trains "
        "nothing. Prompts go [language prompt, task prompt, text] (--placement prefix). Empty: method A's soft prompt")
    modules_dir: str = option("", "language module registry written by 'xlpeft language-module train' (la+/slp+ "
                              "configurations)")
    adapter_reduction_factor: float = option(16, "task adapter bottleneck: hidden size / this (16: 576 -> 36 on "
                                             "SmolLM2, 768 -> 48 on mT0-base)")

    def __post_init__(self) -> None:
        if self.regime == "full" or self.configuration in NO_TASK_PROMPT:
            self.prompt_length = 0
        self.reparam_affine = self._reparam_affine_used()

    def _reparam_affine_used(self) -> ReparamAffine:
        """``reparam_affine`` settled to on or off, so that runs that train the same parameters have one identity:
        off without an MLP LayerNorm (no prompt, or reparam none / lstm), auto: on exactly when the model trains."""
        if self.reparam_affine not in get_args(ReparamAffine):
            raise XlpeftError(f"reparam_affine must be one of {', '.join(get_args(ReparamAffine))} "
                              f"(got {self.reparam_affine!r})")
        if self.prompt_length == 0 or self.reparam not in ("mlp", "residual"):
            return "off"
        if self.reparam_affine == "auto":
            return "on" if self.regime != "prompt" else "off"
        return self.reparam_affine

    @property
    def placement_used(self) -> str:
        if self.regime == "full" or (self.prompt_length == 0 and not self.configuration.startswith("slp")):
            return "none"
        return self.placement

    def resolve(self, task: Task) -> None:
        """Settle what depends on the task and the machine, for ``xlpeft train`` and grids alike: the source
        language(s) in the task's codes (its default when empty; several stored as one comma-joined string, in the
        order given), the source data, and a model directory made absolute (evaluation may run from another
        working directory)."""
        sources = _source_set(task, self.source or task.default_source)
        self.source = ",".join(sources)
        for source in sources:
            task.check_source_data(source, self.source_data)
        if len(sources) > 1 and (problem := several_sources_problem(self.configuration)):
            raise XlpeftError(f"--source {self.source}: {problem}")
        task.template(self.template, "default")  # a template the task cannot fill fails here, before any loading
        if Path(self.model).expanduser().is_dir():
            self.model = str(Path(self.model).expanduser().resolve())

    def identity(self) -> dict:
        """What a run's id hashes: every field that decides its numbers. Fields added after runs existed are
        left out at their defaults, so those runs keep their ids."""
        identity = {k: v for k, v in self.to_dict().items()
                    if k != "device" and not (k in ADDED_LATER and v == ADDED_LATER[k])}
        if self.task_definition:  # where the task file lay is not what the run is (its data are found from there)
            identity["task_definition"] = {k: v for k, v in self.task_definition.items() if k != "folder"}
        return identity

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return _from_stored(cls, data, ADDED_LATER)


def _source_set(task: Task, spec: str) -> list[str]:
    """The codes of a source spec: one language, or several separated by commas, each resolved alone (a named set
    is not a source); a language given twice is an error."""
    sources = []
    for item in [item.strip() for item in spec.split(",") if item.strip()] or [spec]:
        codes = task.resolve_languages(item)
        if len(codes) != 1:
            raise XlpeftError(f"the source must be one language, not {item!r} ({len(codes)} languages): give one code "
                              f"such as {codes[0]} (several sources: codes separated by commas)")
        if codes[0] in sources:
            raise XlpeftError(f"--source {spec}: {codes[0]} is given twice; name each source language once")
        sources += codes
    return sources


def several_sources_problem(configuration: str) -> str | None:
    """Why method B's ``configuration`` cannot train on several source languages, or None: a configuration that
    stacks the source language's module (la+, slp+) has one language module per run."""
    if "+" not in configuration:
        return None
    return (f"configuration {configuration} stacks the source language's {configuration.split('+')[0]} module, one "
            f"per run: give one source language, or train {configuration.split('+')[1]} alone on several")


def _from_stored(cls, data: dict, added_later: dict):
    """``cls`` from a stored dict (config.json, module.json): keys it no longer has are dropped, and a field
    added after the file was written takes the value that file's run implicitly had (``added_later``),
    whatever today's default is."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in {**added_later, **data}.items() if k in known})


DEFAULT_LR = {"la": 1e-3, "slp": 3e-2}  # a language module's learning rate by kind, unless --lr is given


@dataclass
class LanguageModuleConfig:
    """Everything that decides a language module's weights; stored in module.json."""

    model: str = option("smollm2-135m", "backbone: offline name, hub id or local directory")
    language: str = option("eng_Latn", "FLORES code of the language, e.g. swh_Latn", required=True)
    kind: LanguageKind = option("la", "la: language adapter (seq_bn after every block's feed-forward); slp: soft "
                                "language prompt before the text", required=True)
    text: str = option("auto", "text source: a folder of DATA/text (udhr, tatoeba, lafand, ...), sib200-train (the "
                       "unlabeled SIB-200 train split), a file, or a hub dataset such as wikimedia/wikipedia; auto = the "
                       "largest local source of the language")
    max_lines: int | None = option(None, "use at most this many lines (seeded choice)")
    steps: int = option(300, "optimizer steps (the paper: 100k on a GPU)")
    batch_size: int = option(8, "blocks per step")
    block_length: int = option(128, "tokens per block (span corruption: encoder input length; the paper: 256)")
    lr: float | None = option(None, "learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in
                                                                                 DEFAULT_LR.items()) + ")")
    weight_decay: float = option(0.0, "weight decay")  # the paper's SLP used 1e-5 with Adafactor
    optimizer: OptimizerName = option("adamw", OPTIMIZER_HELP)
    max_grad_norm: float | None = option(None, MAX_GRAD_NORM_HELP)
    warmup_ratio: float = option(0.06, "linear warm-up share of the steps")
    prompt_length: int = option(50, "slp: prompt rows (the paper: 50)")
    init_text: str = option("", "slp: text whose embeddings initialise the prompt, repeated to fill it (default: "
                            "'Generate the output in <language name>:')")
    reduction_factor: float = option(16, "la: hidden size / bottleneck")  # the paper: 16
    noise_density: float = option(0.15, "span corruption: share of noise")
    mean_noise_span_length: float = option(3.0, "span corruption: mean span length")
    validation_lines: int = option(200, "held-out lines (at most a tenth of the text) for the validation loss; the best "
                                   "step's weights are kept")
    eval_every: int = option(50, "steps between validations and checkpoints")
    seed: int = option(0, "seeds line order, held-out lines, noise, initial values")
    precision: Precision = option("auto", "bf16 autocast (auto: on GPU)")
    device: str = option("auto", "cpu, cuda, ...; auto = cuda when available")

    @property
    def lr_used(self) -> float:
        return DEFAULT_LR[self.kind] if self.lr is None else self.lr

    @property
    def init_text_used(self) -> str:
        return self.init_text or f"Generate the output in {language_registry()[self.language].name}:"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LanguageModuleConfig:
        return _from_stored(cls, data, MODULE_ADDED_LATER)


BORROW_NONE = "none"  # EvalOptions.borrow: no borrowing, a missing language module is an error


@dataclass
class EvalOptions:
    """How to evaluate (never what: the runs decide the numbers)."""

    split: Split = option("test", "split to evaluate")
    batch_size: int = option(32, "sentences per batch on the uncached path")
    max_memory_gb: float | None = option(None, "cap on cached text states in memory (default: a quarter of available "
                                         "RAM, at most 4)")
    text_cache: bool = option(True, TEXT_CACHE_HELP)
    precision: Precision = option("auto", PRECISION_HELP)
    device: str = option("auto", DEVICE_HELP)
    modules_dir: str | None = option(None, "method B runs: the language module registry to take each target language's "
                                     "module from (default: the one the run was trained with)")
    borrow: str = option(BORROW_NONE, "method B runs: a target language without its own module borrows the nearest "
                         "language's by this URIEL distance (syntactic, geographic, inventory, genetic, phonological, "
                         "featural); none = an error naming the missing module. Rows record the module used")
    nli_output: NliOutput = option("rank", NLI_OUTPUT_HELP)
    choice_score: ChoiceScore = option("sum", CHOICE_SCORE_HELP)
    max_new_tokens: int | None = option(None, "text-to-text runs: tokens to generate (default: what the run's training "
                                        "answers needed, recorded at training; never the evaluated answers)")
    log_samples: bool = option(False, "also write each example's input as the model read it, target, prediction and "
                               "scores, one JSON Lines file per run and language beside the CSV "
                               "(CSV_STEM.samples/RUN/LANGUAGE.jsonl; docs/experiments.md)")

    def memory_budget(self) -> int:
        import psutil  # here, not at the top: the CLI imports this module at start

        if self.max_memory_gb is not None:
            return int(self.max_memory_gb * 2**30)
        return int(min(4 * 2**30, psutil.virtual_memory().available / 4))

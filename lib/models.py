"""Loading a model by name: a zoo organism offline, a TransformerLens model from the Hugging Face
hub (or a local copy of it in the Hugging Face cache), or a local checkpoint folder.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); every chapter's
``MODEL_NAME`` parameter goes through :func:`model_config` (validation, before any heavy work) and
:func:`load_model`. Every way a name can fail says so in one message before anything is
downloaded: an unknown name (with the nearest known names), a folder that is not a checkpoint, an
architecture TransformerLens does not support, a hub model with the hub out of reach (in seconds,
not after Hugging Face's retries) or not in the cache when offline.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
import shutil
import socket
import tempfile
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub
import torch
import transformers
from huggingface_hub import constants as hub
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import loading_from_pretrained as loading
from transformer_lens.utilities.activation_functions import softcap_enabled
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES
from transformers import AutoModelForCausalLM, AutoTokenizer

from lib import env, zoo

warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)

HUB_TIMEOUT_S = 3.0  # the reachability check's wait for the hub (or the proxy) to accept a connection
LOCAL_COPY = (
    "give a local copy: a Hugging Face cache that holds it (HF_HOME pointing at it, with "
    "HF_HUB_OFFLINE=1), or a checkpoint folder (config.json, weights and tokenizer, as "
    "save_pretrained writes them) passed as MODEL_NAME"
)


def _known_names() -> dict[str, str]:
    """Every model name MODEL_NAME accepts, lowercased, mapped to its spelling: the organisms and
    TransformerLens's official names and aliases."""
    names = {name.lower(): name for name in zoo.ORGANISMS}
    for official in loading.OFFICIAL_MODEL_NAMES:
        for name in (official, *loading.MODEL_ALIASES.get(official, [])):
            names.setdefault(name.lower(), name)
    return names


def _unknown(name: str) -> ValueError:
    known = _known_names()
    close = [known[c] for c in difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.75)]
    folder = Path(name).expanduser()
    return ValueError(
        f"MODEL_NAME={name!r} is neither a zoo organism ({', '.join(zoo.ORGANISMS)}), nor a "
        "TransformerLens model name (e.g. gpt2-small, pythia-160m, gemma-2-2b-it; the full list "
        "is transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES), nor a local checkpoint "
        f"folder (there is no folder {folder.absolute()})"
        + (f"; did you mean {' or '.join(close)}?" if close else "")
    )


def _folder(name: str) -> Path | None:
    """``name`` as a local checkpoint folder, or None when there is no such folder."""
    path = Path(name).expanduser()
    if not path.is_dir():
        return None
    if not (path / "config.json").is_file():
        raise ValueError(
            f"MODEL_NAME={name!r} is a folder without a config.json; a local model is a Hugging Face "
            "checkpoint folder: config.json, the weights and the tokenizer, as save_pretrained writes them"
        )
    return path.resolve()


def _folder_config(name: str, folder: Path, **options) -> HookedTransformerConfig:
    """TransformerLens's config for a checkpoint folder, mapped from the architecture its
    config.json names (``GPT2LMHeadModel``, ``GPTNeoXForCausalLM``, ``LlamaForCausalLM``,
    ``Qwen2ForCausalLM``, ...). TransformerLens also guesses architectures from words in a name
    ("llama", "gemma"), so the config is read from a copy in a folder whose name says nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        neutral = Path(tmp) / "checkpoint"
        neutral.mkdir()
        shutil.copy(folder / "config.json", neutral / "config.json")
        try:
            cfg = loading.get_pretrained_model_config(str(neutral), **options)
        except NotImplementedError as err:
            raise ValueError(
                f"MODEL_NAME={name!r}: TransformerLens cannot load this folder's architecture ({err}); "
                "HookedTransformer supports the architectures of "
                "transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES"
            ) from None
    cfg.model_name, cfg.tokenizer_name = folder.name, str(folder)
    return cfg


def _official(name: str) -> str:
    """The Hugging Face repository of a TransformerLens name or alias."""
    try:
        return loading.get_official_model_name(name)
    except ValueError:
        raise _unknown(name) from None


def _hub_unreachable() -> str | None:
    """Why the Hugging Face hub (or the HTTPS proxy in the way) cannot be reached, or None when a
    connection opens within :data:`HUB_TIMEOUT_S`."""
    url = urllib.parse.urlparse(hub.ENDPOINT)
    proxy = None if urllib.request.proxy_bypass(url.hostname) else urllib.request.getproxies().get(url.scheme)
    target = urllib.parse.urlparse(proxy) if proxy else url
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((target.hostname, port), timeout=HUB_TIMEOUT_S).close()
    except OSError as err:
        return f"{target.hostname}:{port}: {err}"
    return None


def _check_hub(name: str, repo: str) -> None:
    """Refuse, in seconds, a hub model that cannot be had: offline (``HF_HUB_OFFLINE``) and not in
    the local cache, or the hub out of reach. Hugging Face would instead retry for about 40 s and
    then say only that it could not connect."""
    cached = isinstance(huggingface_hub.try_to_load_from_cache(repo, "config.json"), str)
    cache = f"the local Hugging Face cache ({hub.HF_HUB_CACHE})"
    where = f"MODEL_NAME={name!r} is the Hugging Face model {repo}"
    if hub.HF_HUB_OFFLINE:
        if not cached:
            raise ValueError(
                f"{where}, which is not in {cache} and HF_HUB_OFFLINE is set: it needs the network "
                f"(unset HF_HUB_OFFLINE), or {LOCAL_COPY}"
            )
        return
    reason = _hub_unreachable()
    if reason is not None:
        hint = (
            f"it is in {cache}: set HF_HUB_OFFLINE=1 to load it from there"
            if cached
            else f"it needs the network (e.g. Colab), or {LOCAL_COPY}"
        )
        raise ValueError(f"{where}, and the hub {hub.ENDPOINT} cannot be reached ({reason}); {hint}")


def model_config(name: str) -> HookedTransformerConfig:
    """The config of a model without loading its weights, so chapters can validate their
    parameters (e.g. sequence length against ``n_ctx``) before any heavy work."""
    if name in zoo.ORGANISMS:
        return HookedTransformerConfig(**zoo.manifest(name)["config"])
    folder = _folder(name)
    if folder is not None:
        return _folder_config(name, folder)
    repo = _official(name)
    _check_hub(name, repo)
    return loading.get_pretrained_model_config(name)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No download or weight-loading progress bars, no TransformerLens prints ("Loaded pretrained
    model ...") and no logged warnings (e.g. the advice against folding LayerNorm in half
    precision) while a model loads: a chapter's output shows the model's one-line description."""
    hub_bars = not huggingface_hub.utils.are_progress_bars_disabled()
    transformers_bars = transformers.utils.logging.is_progress_bar_enabled()
    logged = logging.root.manager.disable  # the level logging.disable was last given
    huggingface_hub.utils.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    logging.disable(max(logged, logging.WARNING))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logged)
        if hub_bars:
            huggingface_hub.utils.enable_progress_bars()
        if transformers_bars:
            transformers.utils.logging.enable_progress_bar()


def _load_folder(
    name: str, folder: Path, device: torch.device, dtype: torch.dtype, processed: bool = True
) -> HookedTransformer:
    """A checkpoint folder processed as ``HookedTransformer.from_pretrained`` processes a hub model:
    LayerNorm folded and writing weights centred (not for post-norm architectures), the
    unembedding centred (not under a logit soft cap), value biases folded; nothing of it when not
    ``processed``."""
    cfg = _folder_config(name, folder, fold_ln=processed, device=device, dtype=dtype)
    post_norm = not processed or cfg.original_architecture in POST_NORM_ARCHITECTURES
    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    state = loading.get_pretrained_state_dict(str(folder), cfg, hf_model, dtype=dtype)
    model = HookedTransformer(
        cfg, AutoTokenizer.from_pretrained(folder), move_to_device=False, default_padding_side="right"
    )
    model.load_and_process_state_dict(
        state,
        fold_ln=not post_norm,
        center_writing_weights=not post_norm,
        center_unembed=processed and not softcap_enabled(cfg.output_logits_soft_cap),
        fold_value_biases=processed,
    )
    model.move_model_modules_to_device()
    return model


def load_model(
    name: str, device: str = "auto", dtype: str = "float32", processed: bool = True
) -> HookedTransformer:
    """Load ``name`` on ``device`` in ``dtype``, in eval mode, quietly.

    Zoo organisms load from the committed files (hash-checked); a local checkpoint folder through
    TransformerLens's conversion for the architecture its config.json names; any other name goes
    through ``HookedTransformer.from_pretrained`` exactly as on Colab, so with ``HF_HUB_OFFLINE=1``
    it reads the local Hugging Face cache. Unknown names, devices and dtypes, and hub models that
    cannot be had here, raise a ``ValueError`` saying what is allowed, before anything is loaded.
    Padding is on the right: TransformerLens masks a left-padded input's leading pad tokens, which
    would hide position 0 where the BOS token doubles as the pad token (a tokenizer without a BOS
    token, such as Qwen2's, gets its end-of-text token as both). ``processed=False`` loads the
    weights as the checkpoint has them (``from_pretrained_no_processing``): what training changes.
    """
    torch_device, torch_dtype = env.pick_device(device), env.pick_dtype(dtype)
    organism = name in zoo.ORGANISMS
    folder = None if organism else _folder(name)
    if not organism and folder is None:
        _check_hub(name, _official(name))
    with _quiet():
        if organism:
            model = zoo.load(name, torch_device, torch_dtype, processed=processed)
        elif folder is not None:
            model = _load_folder(name, folder, torch_device, torch_dtype, processed)
        else:
            load = (
                HookedTransformer.from_pretrained
                if processed
                else HookedTransformer.from_pretrained_no_processing
            )
            model = load(name, device=torch_device, dtype=torch_dtype, default_padding_side="right")
    return model.eval()


def describe(name: str, model: HookedTransformer, n_ordinary: int | None = None) -> str:
    """One line on the loaded model, printed under every chapter's load cell: layers, heads
    (and key/value heads under grouped-query attention), widths, vocabulary (with how many
    ordinary tokens random inputs draw from, when given), context, and what the chapters' inputs
    hold at position 0 (:func:`first_token`)."""
    cfg = model.cfg
    kv = f" ({cfg.n_key_value_heads} key/value heads)" if cfg.n_key_value_heads else ""
    mlp = "" if cfg.attn_only else f", d_mlp {cfg.d_mlp}"
    ordinary = "" if n_ordinary is None else f" ({n_ordinary} ordinary tokens)"
    return (
        f"{name}: {cfg.n_layers} layers x {cfg.n_heads} heads{kv}, d_model {cfg.d_model}{mlp}, "
        f"vocabulary {cfg.d_vocab}{ordinary}, context {cfg.n_ctx}; {first_token(model)}"
    )


def first_token(model: HookedTransformer) -> str:
    """What the chapters put at position 0: always the model's BOS token, prepended explicitly,
    also for models TransformerLens runs without one (``default_prepend_bos=False``: Pythia,
    Qwen2) and, for tokenizers without a BOS token, the end-of-text token TransformerLens puts in
    its place."""
    tok = model.tokenizer
    bos = repr(tok.bos_token)
    if tok.init_kwargs.get("bos_token") is None:
        return (
            f"position 0 is {bos}: the tokenizer has no BOS token; TransformerLens uses its end-of-text token"
        )
    if not model.cfg.default_prepend_bos:
        return (
            f"position 0 is the BOS token {bos}, prepended here (TransformerLens runs this model without it)"
        )
    return f"position 0 is the BOS token {bos}"

"""Expected chat-template renderings for the C++ oracle test (tests/core/text/chat_template_oracle_test.cpp).

Renders every template in chat_templates/ over every conversation in chat_templates/conversations.json with
add_generation_prompt both ways, enable_thinking absent/true/false and other variables, three ways that must agree:
  1. jinja2 directly, in the environment transformers compiles chat templates with (an ImmutableSandboxedEnvironment
     with trim_blocks, lstrip_blocks and loopcontrols; tojson as json.dumps(ensure_ascii=False); raise_exception and
     strftime_now as globals),
  2. transformers.utils.chat_template_utils.render_jinja_template,
  3. a real tokenizer saved with save_pretrained and reloaded with AutoTokenizer: apply_chat_template(tokenize=False).
Writes <out>/expected.json and one saved tokenizer directory per template under <out>/models/ (the C++ test loads the
template and bos/eos tokens from there), plus a directory whose tokenizer_config.json holds a list of named templates.
Also re-renders every case of chat_templates/constructs.json (the expectations the plain unit test
chat_template_constructs_test.cpp reads) in transformers' own jinja2 environment and fails on any difference.

usage: chat_template_oracle.py <chat_templates dir> <output dir>
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.sandbox
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import _compile_jinja_template, render_jinja_template

BOS = "<s>"
EOS = "</s>"


def jinja2_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def attempt(fn):
    try:
        return {"expected": fn()}
    except jinja2.exceptions.TemplateError as e:
        return {"error": str(e)}


def save_tokenizer(path, source):
    vocab = {"[UNK]": 0, BOS: 1, EOS: 2, "hello": 3}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS, unk_token="[UNK]")
    tok.chat_template = source
    tok.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def variable_sets(name, tools):
    sets = []
    for thinking in (None, True, False):
        extra = {} if thinking is None else {"enable_thinking": thinking}
        if name == "llama3":
            extra["date_string"] = "26 Jul 2024"
        if name == "gpt_oss" and thinking is False:
            extra.update({"reasoning_effort": "high", "current_date": "2025-08-05"})
        sets.append(extra)
    if name in ("llama3", "qwen25", "qwen3"):
        sets.append({"tools": tools, **({"date_string": "1 Jan 2025"} if name == "llama3" else {})})
    if name == "llama3":
        sets.append({})  # no date_string: the template calls strftime_now
    return sets


def check_constructs(src_dir):
    with open(os.path.join(src_dir, "constructs.json"), encoding="utf-8") as f:
        constructs = json.load(f)
    for case in constructs:
        got = _compile_jinja_template(case["template"]).render(**case["variables"])
        if got != case["expected"]:
            raise SystemExit(f"constructs.json case {case['name']!r}: jinja2 renders {got!r}, "
                             f"the file records {case['expected']!r}")
    print(f"{len(constructs)} construct cases agree with jinja2")


def main():
    src_dir, out_dir = sys.argv[1], sys.argv[2]
    check_constructs(src_dir)
    os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
    with open(os.path.join(src_dir, "conversations.json"), encoding="utf-8") as f:
        data = json.load(f)
    env = jinja2_environment()
    cases = []
    named = []
    for file in sorted(os.listdir(src_dir)):
        if not file.endswith(".jinja"):
            continue
        name = file[: -len(".jinja")]
        with open(os.path.join(src_dir, file), encoding="utf-8") as f:
            source = f.read()
        named.append({"name": name, "template": source})
        compiled = env.from_string(source)
        tokenizer = save_tokenizer(os.path.join(out_dir, "models", name), source)
        for conv in data["conversations"]:
            if name in conv.get("skip", []):
                continue
            for agp in (False, True):
                for extra in variable_sets(name, data["tools"]):
                    msgs = conv["messages"]
                    kw = dict(extra)
                    tools = kw.pop("tools", None)
                    direct = attempt(lambda: compiled.render(
                        messages=msgs, tools=tools, documents=None, add_generation_prompt=agp,
                        bos_token=BOS, eos_token=EOS, **kw))
                    via_utils = attempt(lambda: render_jinja_template(
                        conversations=[msgs], tools=tools, chat_template=source, add_generation_prompt=agp,
                        bos_token=BOS, eos_token=EOS, **kw)[0][0])
                    via_tokenizer = attempt(lambda: tokenizer.apply_chat_template(
                        msgs, tools=tools, add_generation_prompt=agp, tokenize=False, **kw))
                    if not (direct == via_utils == via_tokenizer):
                        raise SystemExit(f"oracles disagree for {name}/{conv['name']}: "
                                         f"{direct!r} vs {via_utils!r} vs {via_tokenizer!r}")
                    variables = dict(extra)
                    cases.append({"template": name, "conversation": conv["name"], "messages": msgs,
                                  "add_generation_prompt": agp, "variables": variables, **direct})
    # A tokenizer_config.json whose chat_template is a list of named templates, as some models ship.
    multi = os.path.join(out_dir, "models", "named_list")
    os.makedirs(multi, exist_ok=True)
    with open(os.path.join(multi, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": {"content": BOS, "lstrip": False}, "eos_token": EOS, "chat_template": named}, f,
                  ensure_ascii=False, indent=2)
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": BOS, "eos_token": EOS, "cases": cases}, f, ensure_ascii=False, indent=1)
    errors = sum(1 for c in cases if "error" in c)
    print(f"wrote {len(cases)} cases ({errors} raising) for {len(named)} templates to {out_dir}")


if __name__ == "__main__":
    main()

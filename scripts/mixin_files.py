"""Turns jsonnet's JSON output of mixin/build.jsonnet (one file per path,
under SRC) into the generated files under OUT: YAML documents with their
header comments, dashboards as JSON with two-space indentation."""
import json
import os
import sys

import yaml


class Dumper(yaml.SafeDumper):
    pass


def text(dumper, value):
    # Multi-line strings (PromQL, dashboard JSON) as literal blocks.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, text)


def dashboard(value):
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def embed(value):
    """Replaces {"json:": x} by x as JSON text."""
    if isinstance(value, dict):
        if list(value) == ["json:"]:
            return dashboard(value["json:"])
        return {k: embed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [embed(v) for v in value]
    return value


def main(src, out):
    for folder, _, files in os.walk(src):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, src)
            with open(path, encoding="utf-8") as f:
                value = json.load(f)
            os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
            with open(os.path.join(out, rel), "w", encoding="utf-8") as f:
                if rel.endswith(".json"):
                    f.write(dashboard(value))
                    continue
                f.write("".join("# %s\n" % line for line in value["header"]))
                documents = [embed(d) for d in value["documents"]]
                for i, document in enumerate(documents):
                    if len(documents) > 1:
                        f.write("---\n")
                    f.write(yaml.dump(document, Dumper=Dumper, sort_keys=False, width=1000, allow_unicode=True))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""`python -m tools.code_comments`: the entries each translation file (snippets/<module>.zh.yml)
lacks, under the section that shows them, to paste into the file and translate (pagekit.comments)."""
from pagekit.comments import entry, missing, table_path
from pagekit.project import ROOT

for module, texts in missing("zh").items():
    print(f"# add to {table_path(module, 'zh').relative_to(ROOT)}")
    section = None
    for text, w in texts.items():
        if w.section != section:
            section = w.section
            print(f"# {section or '(the whole file)'}")
        print(entry(text, ""), end="")

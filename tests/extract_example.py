#!/usr/bin/env python3
"""Writes the C++ code block that follows a marker in a Markdown file to a source file.

Usage: extract_example.py MARKDOWN MARKER OUTPUT

The marker is an HTML comment such as <!-- example: first_program -->; the first ```cpp block
after it is the example. Examples in the docs are compiled and run as tests, so they cannot drift
from the code.
"""
import sys


def main() -> int:
    markdown_path, marker, output_path = sys.argv[1:4]
    with open(markdown_path, encoding="utf-8") as markdown:
        text = markdown.read()
    start = text.find(f"<!-- example: {marker} -->")
    if start < 0:
        print(f"extract_example.py: marker '{marker}' not found in {markdown_path}", file=sys.stderr)
        return 1
    fence = text.find("```cpp\n", start)
    end = text.find("\n```", fence + 7)
    if fence < 0 or end < 0:
        print(f"extract_example.py: no ```cpp block after marker '{marker}' in {markdown_path}", file=sys.stderr)
        return 1
    with open(output_path, "w", encoding="utf-8") as output:
        output.write(f"// Extracted from {markdown_path.rsplit('/', 1)[-1]}, example '{marker}'. Edit it there.\n")
        output.write(text[fence + 7 : end + 1])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A toy stage binary for tests/copycat_tf/test_stages.py: writes OUTPUT/done.txt with its arguments."""

import os
import sys

if __name__ == "__main__":
    output = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--output="))
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "done.txt"), "w") as handle:
        handle.write(" ".join(sys.argv[1:]))
    print("toy stage done")

"""``python -m tario_clinical.cli``: the ``tario-clinical`` command."""

from . import main

if __name__ == "__main__":  # pragma: no cover
    main()

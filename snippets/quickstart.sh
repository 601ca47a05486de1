# in a clone of this repository
make test    # first run: creates .venv, installs requirements.txt, runs every test
make serve   # zh at http://127.0.0.1:8000/ , en at http://127.0.0.1:8000/en/

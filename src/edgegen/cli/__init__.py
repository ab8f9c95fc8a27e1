"""The ``edgegen`` command line: thin Typer commands over the library stages."""

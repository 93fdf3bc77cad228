"""transferlab's default Hydra configs, one folder per config group.

They live at the top of the repository, where Hydra projects keep their configs;
`src/transferlab/conf` links to this folder, so they ship inside the wheel as the package
`transferlab.conf` and Hydra finds them as `pkg://transferlab.conf` wherever transferlab is
installed.
"""

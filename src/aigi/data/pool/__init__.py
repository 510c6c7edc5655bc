"""The public training pool: real and generated images from public git repositories.

:mod:`.sources` says which repository, commit and paths each source takes and under
what licence; :mod:`.manifest` scans clones into the committed manifest (one row
per image: source, repo, commit, path, sha256, class, generator, size, format,
licence); :mod:`.build` turns clones plus the manifest into ``<out>/<source>/
{0_real,1_fake}/`` with the rejection rules applied and counted. Images are never
committed; repositories are read with git plumbing only and their code never runs.
"""

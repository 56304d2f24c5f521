"""Plumbing every concern uses: atomic files, file locks, progress bars."""

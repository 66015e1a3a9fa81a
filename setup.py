"""Builds the optional C kernels (bot._speedups); all other package metadata is in pyproject.toml.

Without a compiler the extension's build fails softly (``optional=True``) and ``bot.kernels``
uses its pure-Python versions, which give identical results.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "unix":
            # No fused multiply-add: keep every rounding step the same as the Python reference.
            for ext in self.extensions:
                ext.extra_compile_args.append("-ffp-contract=off")
        super().build_extensions()


setup(
    ext_modules=[Extension("bot._speedups", ["bot/_speedups.c"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)

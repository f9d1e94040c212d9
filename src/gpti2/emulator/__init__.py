"""The local emulator of the gpt-image2 API (`gpti2 serve`, `--base-url local`)."""

from gpti2.emulator.server import Emulator, EmulatorConfig, running_emulator

__all__ = ["Emulator", "EmulatorConfig", "running_emulator"]

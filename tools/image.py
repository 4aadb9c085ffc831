"""The custom MicroPython image for boards without PSRAM: enosnb frozen, Bluetooth off.

    python tools/image.py [--print]      (make image)

The recipe, reproducible: MicroPython MICROPYTHON_TAG, built in Espressif's ESP-IDF container
IDF_IMAGE (the IDF release MicroPython's ports/esp32/lockfiles/dependencies.lock.esp32 names
for that tag; the build stops if the two disagree), with the board definition
boards/ESP32_ENOSNB (ESP32_GENERIC without BLE, sdkconfig fragment sdkconfig.board) and the
frozen manifest boards/manifest.py. The image lands in build/image/; flash it with
`make flash PORT=... IMAGE=build/image/<name>.bin`, then `make deploy` copies the files that
stay files (main.py, sensors.py, board.json, secrets.json: tools/deploy.py --no-lib).

It needs Docker with a running engine and the network (GitHub, Docker Hub). Without them it
says so in one line and exits 2; --print shows the docker command without running it.
"""
import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON_TAG = "v1.29.0"
IDF_IMAGE = "espressif/idf:v5.5.5"
BOARD = "ESP32_ENOSNB"
OUT_DIR = os.path.join(ROOT, "build", "image")

# Runs inside the container, with the repository mounted at /src.
_SCRIPT = r"""set -e
git clone --depth 1 --branch {tag} https://github.com/micropython/micropython /build/micropython
cd /build/micropython
want=v$(sed -n '/^  idf:/,/^  [a-z]/s/^    version: *//p' ports/esp32/lockfiles/dependencies.lock.esp32)
have=$(idf.py --version | sed -n 's/^ESP-IDF \(v[0-9.]*\).*/\1/p')
if [ "$want" != "$have" ]; then
  echo "MicroPython {tag} is built with ESP-IDF $want, the container has $have: set IDF_IMAGE in tools/image.py" >&2
  exit 3
fi
make -C mpy-cross
make -C ports/esp32 BOARD_DIR=/src/boards/{board} submodules
make -C ports/esp32 BOARD_DIR=/src/boards/{board}
mkdir -p /src/build/image
cp ports/esp32/build-{board}/firmware.bin /src/build/image/{name}
"""


def image_name():
    return "%s-%s.bin" % (BOARD, MICROPYTHON_TAG)


def image_path():
    return os.path.join(OUT_DIR, image_name())


def docker_command(docker="docker"):
    script = _SCRIPT.format(tag=MICROPYTHON_TAG, board=BOARD, name=image_name())
    return [docker, "run", "--rm", "-v", "%s:/src" % ROOT, "-w", "/build", IDF_IMAGE,
            "bash", "-c", script]


def why_not(docker="docker"):
    """None when Docker can run the recipe here, else the reason in a few words."""
    exe = shutil.which(docker)
    if exe is None:
        return "no docker command"
    try:
        r = subprocess.run([exe, "info", "--format", "{{.ServerVersion}}"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return "docker info failed (%s)" % e
    if r.returncode != 0 or not r.stdout.strip():
        return "no Docker engine is running"
    return None


def main(argv=None):
    p = argparse.ArgumentParser(prog="tools/image.py")
    p.add_argument("--print", action="store_true", help="show the docker command only")
    p.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
    a = p.parse_args(argv)
    cmd = docker_command(a.docker)
    if a.print:
        print(" ".join(cmd[:-1]) + " '<recipe script>'")
        print(cmd[-1])
        return 0
    reason = why_not(a.docker)
    if reason:
        print("make image: cannot build here (%s): it needs Docker with a running engine and "
              "network access; the recipe is boards/%s, boards/manifest.py and tools/image.py "
              "(MicroPython %s, %s)" % (reason, BOARD, MICROPYTHON_TAG, IDF_IMAGE))
        return 2
    rc = subprocess.call(cmd)
    if rc == 0:
        print("image: %s" % os.path.relpath(image_path(), ROOT))
    return rc


if __name__ == "__main__":
    sys.exit(main())

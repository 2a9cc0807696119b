#!/usr/bin/python3
"""A fake IP camera for vigil-rtsp's tests and the ingest benchmark.

Serves synthetic RTSP streams on 127.0.0.1 with GStreamer's RTSP server:

  /h264     640x360 10 fps H.264 (a bouncing ball)
  /h265     the same in H.265
  /hd       1280x720 10 fps H.264
  /secure   /h264 behind basic auth, user "vigil", password --password
  /garbage  RTP that claims to be H.264 but carries random bytes
  /clip     with --clip FILE.y4m: that recording, looped, as 10 fps H.264
            (how `cargo xtask camera` serves the demo scene to a real RTSP client)
  /mjpeg    640x360 10 fps Motion JPEG, a codec vigil does not take

Every mount is shared: all its clients watch one encoder, so many cameras
cost the server no more than one.
Prints "READY <port>" on stdout once listening; exits cleanly on SIGTERM or
SIGINT. Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and the
GStreamer plugins (base, good, ugly for x264enc, bad for x265enc); run it with
the system /usr/bin/python3, which is the one that sees those.
"""

import argparse
import random
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

USER = "vigil"


def camera(width, height, encoder, payloader):
    """A launch line for a live test pattern, encoded for low latency.

    key-int-max=10 puts a keyframe every second so a client that joins a
    shared stream late decodes within a second; config-interval=-1 on the
    payloader repeats SPS/PPS (and VPS) with every keyframe for the same reason.
    I420 is spelled out because videotestsrc would otherwise offer 4:4:4,
    which rtpjpegpay refuses (and a media that cannot start stalls the whole
    server's main loop).
    """
    return (
        f"( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,format=I420,width={width},height={height},framerate=10/1 "
        f"! {encoder} ! {payloader} name=pay0 pt=96 )"
    )


H264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10"
H265 = "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=10"
H264_PAY = "rtph264pay config-interval=-1"
H265_PAY = "rtph265pay config-interval=-1"

# Random bytes framed as H.264 access units. No parameter set ever comes, so
# the client's parser has nothing to decode with and no picture comes out,
# however long it listens. The payloader is told the caps outright since
# nothing upstream can say them.
GARBAGE = (
    "( appsrc name=noise is-live=true do-timestamp=true format=time "
    "caps=video/x-h264,stream-format=byte-stream,alignment=au "
    "! rtph264pay name=pay0 pt=96 )"
)


def feed_noise(_factory, media):
    """Pushes 4 KiB of random bytes, prefixed by a start code, 10 times a second."""
    src = media.get_element().get_by_name("noise")
    rand = random.Random(1)

    def push():
        # One start code and the header of an IDR slice, then noise with no
        # zero bytes, so no stray start code can ever frame a parameter set.
        body = rand.randbytes(4096).replace(b"\x00", b"\x01")
        data = b"\x00\x00\x00\x01\x65" + body
        return src.emit("push-buffer", Gst.Buffer.new_wrapped(data)) == Gst.FlowReturn.OK

    GLib.timeout_add(100, push)


def read_y4m(path):
    """(width, height, fps, [I420 frames]) of a 4:2:0 YUV4MPEG2 file."""
    with open(path, "rb") as f:
        header = f.readline().split()
        if not header or header[0] != b"YUV4MPEG2":
            sys.exit(f"{path}: not a YUV4MPEG2 file")
        fields = {h[:1]: h[1:] for h in header[1:]}
        width, height = int(fields[b"W"]), int(fields[b"H"])
        num, den = (int(x) for x in fields.get(b"F", b"25:1").split(b":"))
        if not fields.get(b"C", b"420").startswith(b"420"):
            sys.exit(f"{path}: only 4:2:0 recordings can be served")
        size = width * height * 3 // 2
        frames = []
        while line := f.readline():
            if not line.startswith(b"FRAME"):
                sys.exit(f"{path}: expected FRAME at frame {len(frames)}")
            frame = f.read(size)
            if len(frame) < size:
                break
            frames.append(frame)
    if not frames:
        sys.exit(f"{path}: no frames")
    return width, height, num / den, frames


def clip_launch(width, height, fps):
    rate = f"{round(fps * 1000)}/1000"
    return (
        f"( appsrc name=clip is-live=true format=time do-timestamp=true "
        f"caps=video/x-raw,format=I420,width={width},height={height},framerate={rate} "
        f"! videoconvert ! {H264} ! {H264_PAY} name=pay0 pt=96 )"
    )


def play_clip(frames, fps):
    """A media-configure handler pushing `frames` in a loop at `fps`."""

    def configure(_factory, media):
        src = media.get_element().get_by_name("clip")
        position = [0]

        def push():
            frame = frames[position[0] % len(frames)]
            position[0] += 1
            return src.emit("push-buffer", Gst.Buffer.new_wrapped(frame)) == Gst.FlowReturn.OK

        GLib.timeout_add(round(1000 / fps), push)

    return configure


def factory(launch):
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(launch)
    f.set_shared(True)
    return f


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554, help="0 picks a free port")
    parser.add_argument("--password", default="s3cret", help="password of user vigil on /secure")
    parser.add_argument("--clip", help="a 4:2:0 .y4m recording to serve, looped, on /clip")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    # Auth applies to the whole server, so anonymous clients (and clients
    # with a wrong password) get a default token whose role every open mount
    # admits. On /secure that role may only "access", not "construct": the
    # server answers a denied access with 404 but a denied construct with 401,
    # and only a 401 makes a client send (or re-send) its credentials.
    auth = GstRtspServer.RTSPAuth()
    anonymous = GstRtspServer.RTSPToken()
    anonymous.set_string("media.factory.role", "anonymous")
    auth.set_default_token(anonymous)
    user = GstRtspServer.RTSPToken()
    user.set_string("media.factory.role", USER)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(USER, args.password), user)
    server.set_auth(auth)

    def allow(f, role, construct=True):
        construct = "true" if construct else "false"
        f.add_role_from_structure(
            Gst.Structure.new_from_string(
                f"{role}, media.factory.access=(boolean)true, media.factory.construct=(boolean){construct}"
            )
        )
        return f

    mounts = server.get_mount_points()
    mounts.add_factory("/h264", allow(factory(camera(640, 360, H264, H264_PAY)), "anonymous"))
    mounts.add_factory("/h265", allow(factory(camera(640, 360, H265, H265_PAY)), "anonymous"))
    mounts.add_factory("/hd", allow(factory(camera(1280, 720, H264, H264_PAY)), "anonymous"))
    secure = allow(factory(camera(640, 360, H264, H264_PAY)), USER)
    mounts.add_factory("/secure", allow(secure, "anonymous", construct=False))
    mounts.add_factory("/mjpeg", allow(factory(camera(640, 360, "jpegenc", "rtpjpegpay")), "anonymous"))
    garbage = allow(factory(GARBAGE), "anonymous")
    garbage.connect("media-configure", feed_noise)
    mounts.add_factory("/garbage", garbage)

    if args.clip:
        width, height, fps, frames = read_y4m(args.clip)
        clip = allow(factory(clip_launch(width, height, fps)), "anonymous")
        clip.connect("media-configure", play_clip(frames, fps))
        mounts.add_factory("/clip", clip)

    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print(f"READY {server.get_bound_port()}", flush=True)

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()

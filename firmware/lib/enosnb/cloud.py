"""The device's EnOS client (enos-coap.md §5-§11): its transport (enosnb.link), its saved
counters, and the cloud commands that ride on responses, handled by the device maker's
sensor (set_points, service, raw_command) or answered from the last reading (get).

The command dispatcher (enosnb.enos.commands) loads only when a response names a command
(option 2100): most cycles have none. Its dedupe memory is kept in the state in between.
"""
from enosnb.app import log
from enosnb.coap import options as opt
from enosnb.enos.errors import EnosError


class Commands:
    """What the EnOS client calls after each response (EnosClient commands=): loads the
    dispatcher, with the handlers and the saved dedupe memory, on the first command."""

    def __init__(self, app):
        self.app = app
        self.loaded = None
        self.executed = 0

    def drain(self, client, res):
        if res is None or res.option(opt.ENOS_TOPIC) is None:
            return 0
        done = self.load().drain(client, res)
        self.executed = self.loaded.executed
        return done

    def load(self):
        if self.loaded is None:
            from enosnb.enos.commands import Commands as Dispatcher
            d = Dispatcher(max_per_wake=8, log=log)
            handlers(self.app, d)
            saved = self.app.state.get("cmds")
            if saved:
                try:
                    d.restore(saved)
                except (EnosError, ValueError):
                    pass
            self.loaded = d
        return self.loaded

    def state(self):
        """The dedupe memory to keep, or None when no command came this cycle (the saved one
        stays as it is)."""
        return self.loaded.state() if self.loaded is not None else None


def make_enos(app):
    """The EnosClient of this cycle, on a new Link, its counters restored."""
    from enosnb.enos.client import EnosClient
    from enosnb.link import Link
    cfg = app.secrets.enos_config()
    if not cfg["deviceSecret"]:
        from enosnb import activation
        cfg["deviceSecret"] = activation.secret(app)
    app.commands = Commands(app)
    app.link = Link(app)
    enos = EnosClient(app.link, cfg, on_secret=lambda s: _persist(app, s),
                      commands=app.commands, clock=app.clock)
    saved = app.state.get("enos")
    if saved:
        try:
            enos.restore(saved)
        except EnosError:
            pass
    return enos


def _persist(app, secret):
    from enosnb import activation
    activation.persist(app, secret)


def handlers(app, commands):
    """The device maker's sensor answers set, service and raw commands; get is answered
    from the last reading."""
    sensor = app.sensor

    def on_set(params):
        fn = getattr(sensor, "set_points", None)
        if fn is None:
            return 404
        return fn(params)

    def on_get(params):
        pts = app.last_points or {}
        if isinstance(params, list) and params:
            return dict((k, pts[k]) for k in params if k in pts)
        return dict(pts)

    def on_service(service_id, params):
        fn = getattr(sensor, "service", None)
        if fn is None:
            return 404, {}
        return fn(service_id, params)

    commands.on_set(on_set)
    commands.on_get(on_get)
    commands.on_service(on_service)
    raw = getattr(sensor, "raw_command", None)
    if raw is not None:
        commands.on_raw(raw)

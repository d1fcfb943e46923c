"""``spikeforge export nir SOURCE OUT.nir``: a trained network as a NIR graph (docs/interchange.md)."""

from __future__ import annotations

from ..interchange.nir_names import APPROXIMATIONS, DEFAULT_DT_S, POOLINGS, R_CONVENTIONS


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a trained network to an interchange format (NIR)",
        description="Export a trained network to an interchange format.",
    )
    sub = p.add_subparsers(dest="export_command", metavar="FORMAT")
    n = sub.add_parser(
        "nir",
        help="write a `tha mnist` run/checkpoint as a NIR graph (HDF5), read by snnTorch, Norse, ...",
        description="Write the network of a `spikeforge tha mnist` run or checkpoint as a NIR 1.x graph. "
        "Batch norm is folded into the convolutions (running statistics), binarized weights are written as "
        "their signs. NIR has no reset by subtraction, which the snn-tha network uses: the export is refused "
        "unless --approximate reset-to-zero is given. See docs/interchange.md.",
    )
    n.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="run directory (uses trial0/best) or checkpoint prefix")
    n.add_argument("out", metavar="OUT.nir", help="NIR file to write")
    n.add_argument(
        "--approximate",
        action="append",
        default=[],
        choices=sorted(APPROXIMATIONS),
        help="allow an approximation; reset-to-zero: " + APPROXIMATIONS["reset-to-zero"],
    )
    n.add_argument("--dt", type=float, default=DEFAULT_DT_S, help=f"seconds per time step (default {DEFAULT_DT_S:g})")
    n.add_argument(
        "--r-convention",
        choices=R_CONVENTIONS,
        default="snntorch",
        help="snntorch: r = tau/dt (default); unit: r = 1, tau/dt folded into the weights (for Norse, which ignores r)",
    )
    n.add_argument(
        "--pooling",
        choices=POOLINGS,
        default="avg",
        help="avg: NIR AvgPool2d (default; snnTorch); sum: SumPool2d with 1/area in the convolution (for Norse)",
    )
    n.set_defaults(func=_nir)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _nir(args) -> int:
    from ..interchange.nir import to_nir, write_nir
    from ..interchange.sources import load_model

    net, where = load_model(args.source)
    graph = to_nir(net, dt=args.dt, approximate=args.approximate, r_convention=args.r_convention, pooling=args.pooling)
    write_nir(graph, args.out)
    nodes = ", ".join(f"{k}:{type(v).__name__}" for k, v in graph.nodes.items())
    print(f"wrote {args.out} from {where} (dt {args.dt:g} s; r {args.r_convention}; pooling {args.pooling})")
    print(f"  nodes: {nodes}")
    print(f"  approximations: {graph.metadata['approximations']}")
    return 0

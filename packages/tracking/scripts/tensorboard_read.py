"""Reads Kiln-written TensorBoard event files with TensorBoard's own Python reader.

TensorBoard's `EventAccumulator` (its record reader checks both masked CRCs of every record)
loads the file; this prints what TensorBoard sees as JSON: scalars, images (size and SHA-256 of
the PNG), text tensors and the hparams plugin's data. The output is committed as
`test/fixtures/tensorboard/tensorboard-read.json` and compared with Kiln's own reading.

TensorBoard is not packaged for Debian and PyPI is out of reach here, so run it from source
(python3-protobuf python3-grpc-tools python3-absl python3-six python3-numpy from Debian):

    TB_GIT=$(fetch github:tensorflow/tensorboard)   # any checkout or bare git dir of tensorboard
    sh scripts/tensorboard_setup.sh "$TB_GIT" /tmp/tb
    PYTHONPATH=/tmp/tb /usr/bin/python3 scripts/tensorboard_read.py test/fixtures/tensorboard/events.out.tfevents.kiln
"""
import hashlib
import json
import sys

from google.protobuf.json_format import MessageToDict
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2


def main(path):
    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    out = {"file_version": acc.file_version, "scalars": {}, "images": {}, "text": {}, "hparams": {}}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.value if e.value == e.value else "NaN"] for e in acc.Scalars(tag)]
    for tag in tags["images"]:
        out["images"][tag] = [
            [e.step, e.width, e.height, hashlib.sha256(e.encoded_image_string).hexdigest()] for e in acc.Images(tag)
        ]
    for tag in tags["tensors"]:
        out["text"][tag] = [[e.step, e.tensor_proto.string_val[0].decode("utf-8")] for e in acc.Tensors(tag)]
    for tag, content in acc.PluginTagToContent("hparams").items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        out["hparams"][tag] = MessageToDict(data, preserving_proto_field_name=True)
    json.dump(out, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main(sys.argv[1])

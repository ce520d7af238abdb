"""The four modality models of M2PT (image, video, point cloud, audio) and their tokenizers."""
from .audio import AudioTransformer
from .factory import POINT_TASKS, create_model, create_model_from_args, valid_overrides
from .fbank import AUDIOSET_FBANK_MEAN, AUDIOSET_FBANK_STD, FbankTransform, SpecAugment, compute_fbank_stats
from .image import create_image_model
from .point import MiniPointNet, PointPartSegTransformer, PointTransformer, default_fetch_indices
from .point_ops import farthest_point_sample, gather_points, group_points, knn_indices, three_nn_interpolate
from .pos_embed import sincos_2d_pos_embed, sincos_3d_pos_embed, sinusoid_1d_table
from .presets import MODALITIES, PRESETS
from .video import TubeletEmbed, VideoTransformer

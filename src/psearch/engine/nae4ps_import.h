#pragma once
/// Loading the official NAE4PS checkpoints (github.com/DeanChan/NAE4PS, PyTorch 1.2):
/// `checkpoint.pth` = torch.save({"epoch", "model": state_dict, "optimizer", "lr_scheduler"}).
/// The key map is in docs/checkpoints.md; in short:
///
///   official                                              psearch
///   backbone.{conv1,bn1,layer1..3}.*                      backbone.*            (same)
///   rpn.head.conv.{weight,bias}                           rpn.head.conv.0.0.*
///   rpn.head.{cls_logits,bbox_pred}.*                     rpn.head.*            (same)
///   roi_heads.box_head.layer4.*                           roi_heads.head.*
///   roi_heads.box_predictor.bbox_pred.0.*                 roi_heads.bbox_pred.*
///   roi_heads.box_predictor.bbox_pred.1.*                 roi_heads.bbox_bn.*
///   roi_heads.box_predictor.cls_score.*                   (dropped: unused by NAE)
///   roi_heads.embedding_head.projectors.feat_res4.*       embedding_head.proj_res4.*
///   roi_heads.embedding_head.projectors.feat_res5.*       embedding_head.proj_res5.*
///   roi_heads.embedding_head.rescaler.*                   nae.rescaler.*
///   roi_heads.reid_loss.{lut,cq}                          reid_loss.{lut,cq}
///   (not saved: a Python int)                             reid_loss.header_cq = 0
///   roi_heads.reid_loss.cq_omega                          (dropped: the SMR variant's)
///
/// PyTorch 1.2 wrote the legacy (pre-zip) format, which this reader does not take: re-save
/// the file once with any PyTorch >= 1.6 (docs/checkpoints.md has the one-liner).
#include <string>

#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/two_stage/two_stage_model.h"

namespace psearch::engine {

/// Renames an official state_dict (with or without the "model." prefix of the checkpoint
/// dict; other top-level entries such as "optimizer.*" are ignored) to psearch names for
/// `model`. BatchNorm counters (num_batches_tracked) are dropped where `model` has frozen
/// BN. Throws std::runtime_error naming `source` for a key it does not know.
checkpoint::TensorMap map_nae4ps_state(const checkpoint::TensorMap& official, modeling::TwoStageModelImpl& model,
                                       const std::string& source);

/// Reads an official checkpoint file and loads it strictly into `model` (a NAE or NAE+
/// built with the matching config: ResNet-50, fuse_res4 as the checkpoint, bbox_reg_bn,
/// num_pids = its lookup-table rows). Throws std::runtime_error naming the file.
void load_nae4ps_checkpoint(modeling::TwoStageModelImpl& model, const std::string& path);

/// Rows of the official lookup table (roi_heads.reid_loss.lut) in the file: the num_pids
/// to build the model with. Throws when the file has none.
int64_t nae4ps_num_pids(const std::string& path);

}  // namespace psearch::engine
